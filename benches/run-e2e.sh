#!/usr/bin/env bash
# Reproduces the end-to-end numbers in BENCHMARKS.md:
#   benches/run-e2e.sh 100000 1000000
# Builds the release binary, installs DuckDB 1.5.5 in a venv, and runs
# benches/e2e_profiles.py for each size (data is kept under $BENCH_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR="${BENCH_DIR:-/var/tmp/profiledb-bench}"
mkdir -p "$BENCH_DIR"
cargo build --release --locked --bin profiledb
if [ ! -x "$BENCH_DIR/venv/bin/python" ]; then
  python3 -m venv "$BENCH_DIR/venv"
  "$BENCH_DIR/venv/bin/pip" install -q duckdb==1.5.5
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%Y-%m-%d)"
for people in "${@:-1000000}"; do
  "$BENCH_DIR/venv/bin/python" benches/e2e_profiles.py "${CARGO_TARGET_DIR:-$PWD/target}/release/profiledb" "$BENCH_DIR" "$people"
done
