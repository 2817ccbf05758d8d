#!/usr/bin/env bash
# Strait's benchmark, one command: builds strait and strait-bench in release, then runs
#   strait-bench run [flags...]
# Strait beside NGINX and HAProxy under wrk, h2load and iperf3 on 127.0.0.1, pinned with taskset
# (proxy on the last CPU, load generator + origin on the others). Installs missing tools with
# apt-get. Flags pass through (see `--help`, bench/README.md and docs/performance.md):
#
#   scripts/bench.sh --quick                          # ≈3 min: pinned, short measurements
#   scripts/bench.sh                                  # ≈12 min: full length, pinned + all-cores
#   scripts/bench.sh --quick --targets direct,strait --scenarios small,l4
#   scripts/bench.sh --help
#
# The last line of stdout is the results directory (default results/bench-<UTC timestamp>/);
# progress goes to stderr. To put a run into docs/performance.md:
#   target/release/strait-bench publish <results dir>
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strait -p strait-bench >&2
exec target/release/strait-bench run --strait-bin target/release/strait "$@"
