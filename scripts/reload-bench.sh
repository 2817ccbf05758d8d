#!/usr/bin/env bash
# Reloads under load (issue 11's benchmark; a script, not a timed test): wrk against an HTTP
# listener while the configuration is reloaded RELOADS times (one every INTERVAL seconds,
# alternating two valid files), once with keep-alive and once with `Connection: close`, then
# the same two runs without reloads for the latency baseline. Prints wrk's summary (socket
# errors, non-2xx responses, latency percentiles) for each and the reload counters.
#
#   scripts/reload-bench.sh                 # RELOADS=100 INTERVAL=0.05 DUR=8
#   RELOADS=20 DUR=3 scripts/reload-bench.sh
#
# Installs wrk (Debian) if missing. Everything stays on loopback; the proxy runs on core 1, the
# origin (strait-bench's built-in one) and wrk on core 0 when there are two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
RELOADS=${RELOADS:-100}
INTERVAL=${INTERVAL:-0.05}
DUR=${DUR:-8}
if ! command -v wrk >/dev/null; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p strait -p strait-bench
BIN=target/release
dir=$(mktemp -d /tmp/strait-reload-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
pin_proxy="taskset -c 1"; pin_load="taskset -c 0"
[[ $(nproc) -ge 2 ]] || { pin_proxy=""; pin_load=""; }

$pin_load "$BIN/strait-bench" origin --h1 127.0.0.1:18201 --h2c 127.0.0.1:18202 >/dev/null 2>&1 &
pids+=($!)
for variant in a b; do
  weight=$([[ $variant == a ]] && echo 1 || echo 3)
  cat > "$dir/$variant.toml" <<TOML
[admin]
address = "127.0.0.1:18209"
[log]
level = "warn"
[[listener]]
name = "web"
address = "127.0.0.1:18200"
protocol = "http"
[[listener.route]]
name = "all"
path_prefix = "/"
clusters = [{ cluster = "origin", weight = 1 }, { cluster = "origin-$variant", weight = $weight }]
[[cluster]]
name = "origin"
endpoints = [{ address = "127.0.0.1:18201" }]
[[cluster]]
name = "origin-$variant"
endpoints = [{ address = "127.0.0.1:18201" }]
TOML
done
cp "$dir/a.toml" "$dir/strait.toml"
$pin_proxy "$BIN/strait" run --config "$dir/strait.toml" > "$dir/strait.log" 2>&1 &
pids+=($!)
proxy=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18200/small && break; sleep 0.05; done

reloader() {
  for i in $(seq "$RELOADS"); do
    if (( i % 2 )); then cp "$dir/b.toml" "$dir/strait.toml.new"; else cp "$dir/a.toml" "$dir/strait.toml.new"; fi
    mv "$dir/strait.toml.new" "$dir/strait.toml"
    kill -HUP "$proxy"
    sleep "$INTERVAL"
  done
}

measure() {  # $1: label, $2: keepalive or close, $3: reload or none
  local out="$dir/wrk.out"
  local extra=()
  [[ $2 == close ]] && extra=(-H "Connection: close")
  if [[ $3 == reload ]]; then reloader & local r=$!; fi
  $pin_load wrk -t1 -c32 -d"${DUR}s" --latency "${extra[@]}" http://127.0.0.1:18200/small > "$out" 2>&1 || { echo "wrk failed:" >&2; cat "$out" "$dir/strait.log" >&2; exit 1; }
  if [[ $3 == reload ]]; then wait "$r"; fi
  local reqs errors non2xx p50 p99
  reqs=$(awk '/requests in/ {print $1}' "$out")
  errors=$(awk '/Socket errors/ {print $0}' "$out"); errors=${errors:-"Socket errors: none"}
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out"); non2xx=${non2xx:-0}
  p50=$(awk '$1 == "50%" {print $2}' "$out"); p99=$(awk '$1 == "99%" {print $2}' "$out")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$reqs" "$errors" "$non2xx" "$p50" "$p99"
}

echo "| run | requests | socket errors | non-2xx | p50 | p99 |"
echo "|---|---:|---|---:|---:|---:|"
measure "keep-alive, no reloads" keepalive none
measure "keep-alive, $RELOADS reloads" keepalive reload
measure "Connection: close, no reloads" close none
measure "Connection: close, $RELOADS reloads" close reload
echo
curl -s http://127.0.0.1:18209/metrics | grep -E '^strait_config_(version|reloads_total)'
