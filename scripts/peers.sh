#!/usr/bin/env bash
# Benchmarks Strait beside NGINX and HAProxy with the shared harness (../shared/bench/peers.sh):
# proxy pinned on core 1, load generator and origins on core 0. Port 19025 is Strait's TCP (L4)
# listener in front of the harness's iperf3 sink (the L4 scenario); port 19005 is its HTTP/1.1
# reverse proxy (one catch-all route, pooled keep-alive upstream connections) in front of the
# harness's HTTP origin, like the peers' L7 configurations.
#
#   scripts/peers.sh                      # HTTP and L4 scenarios, pinned, full length
#   SCENARIOS="l4 small churn" QUICK=1 scripts/peers.sh
#
# STRAIT_RUNTIME adds lines to Strait's [runtime] table (e.g. 'relay = "copy"'), STRAIT_FLAGS adds
# command-line flags (e.g. '--io-driver epoll').
# Any knob of peers.sh (REPS, L4_DUR, VARIANTS, ...) passes through the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
harness=${PEERS_SH:-../shared/bench/peers.sh}
[[ -f $harness ]] || { echo "missing $harness (the shared bench harness)" >&2; exit 2; }
# The harness installs nginx itself, but Debian ships NGINX's L4 proxy as a separate module.
if [[ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]]; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnginx-mod-stream >/dev/null
fi
cargo build --release -p strait
export SCENARIOS=${SCENARIOS:-"small 16k h2c churn l4"} VARIANTS=${VARIANTS:-pinned}
export CANDIDATE_NAME=strait CANDIDATE_PORT=19005 CANDIDATE_H2C_PORT=19006 CANDIDATE_TCP_PORT=19025
STRAIT_BIN=$(pwd)/target/release/strait
export STRAIT_BIN
# Single quotes: the harness expands these variables when it starts the candidate.
# shellcheck disable=SC2016
export CANDIDATE_CMD='cfg=$RUN_DIR/strait.toml
cat > "$cfg" <<TOML
[runtime]
drain_timeout = "2s"
${STRAIT_RUNTIME:-}
[log]
level = "warn"
[[listener]]
name = "l4"
address = "127.0.0.1:$CANDIDATE_TCP_PORT"
cluster = "iperf"
[[listener]]
name = "http"
address = "127.0.0.1:$CANDIDATE_PORT"
protocol = "http"
cluster = "origin"
[[listener]]
name = "h2c"
address = "127.0.0.1:$CANDIDATE_H2C_PORT"
protocols = ["h2c"]
[[listener.route]]
name = "all"
path_prefix = "/"
cluster = "origin"
[[cluster]]
name = "iperf"
endpoints = [{ address = "$IPERF_ADDR" }]
[[cluster]]
name = "origin"
endpoints = [{ address = "$BACKEND_ADDR" }]
# As many idle keep-alive connections as NGINX keeps in this run (keepalive 1024): an h2c
# client with 16 x 32 streams in flight needs ~512 upstream HTTP/1.1 connections.
pool_max_idle = 1024
TOML
exec "$STRAIT_BIN" run --config "$cfg" ${STRAIT_FLAGS:-}'
exec bash "$harness"
