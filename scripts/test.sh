#!/usr/bin/env bash
# The project's test command (README): formatting, lints, and the whole workspace's tests.
# Integration tests spawn the real `strait` binary on loopback; they need nothing beyond the
# Rust toolchain and bash.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
