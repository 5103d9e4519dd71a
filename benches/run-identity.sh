#!/usr/bin/env bash
# Reproduces the identity-resolution numbers in BENCHMARKS.md:
#   benches/run-identity.sh 1000000 10000000 50000000
# Builds benches/identity.rs (release), installs DuckDB 1.5.5 in a venv,
# generates each size once under $BENCH_DIR, then runs profiledb's resolver,
# the bare union-find floor and DuckDB label propagation, alternating, each
# in its own process under /usr/bin/time (peak RSS).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR="${BENCH_DIR:-/var/tmp/profiledb-bench}"
ROUNDS="${ROUNDS:-3}"
mkdir -p "$BENCH_DIR"
bin=$(cargo bench --locked --bench identity --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)
if [ ! -x "$BENCH_DIR/venv/bin/python" ]; then
  python3 -m venv "$BENCH_DIR/venv"
  "$BENCH_DIR/venv/bin/pip" install -q duckdb==1.5.5
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"
measure() { # prints the JSON line with peak_mib added
  local out
  out=$( { /usr/bin/time -f 'PEAK %M' "$@" 2>&1 1>&3 | grep '^PEAK' ; } 3>&1 )
  local json peak
  json=$(echo "$out" | grep '^{')
  peak=$(echo "$out" | sed -n 's/^PEAK //p')
  echo "${json%\}},\"peak_mib\":$((peak / 1024))}"
}
for links in "${@:-1000000}"; do
  dir="$BENCH_DIR/identity-$links"
  if [ ! -f "$dir/edges.parquet" ]; then
    "$bin" gen "$links" "$dir"
  fi
  for round in $(seq "$ROUNDS"); do
    measure "$bin" resolve "$dir"
    measure "$bin" floor "$dir"
    measure "$BENCH_DIR/venv/bin/python" benches/identity_duckdb.py "$dir"
  done | sed "s/^{/{\"links\":$links,/"
done
