#!/usr/bin/env bash
# Reproduces the "Incremental refresh of the default models" numbers in
# BENCHMARKS.md:
#   benches/run-incremental.sh [people] [landing people]
#   benches/run-incremental.sh 610000 6100     # ≈10M events, 1% new events
# Builds a history (generate + run), lands a further 1% of events (a
# generated batch of other people — numbered after the history's, so none
# of their identifiers is shared — events only, as new raw files) and runs
# once (the first run after a full build also builds the graph's index),
# lands a second 1%, copies the root, then times side by side on the same
# machine (the steady state):
#   incremental:   profiledb run                 (on the root)
#   full refresh:  profiledb run --full-refresh  (on the copy)
# and prints each model's seconds from the two runs' own output.
set -euo pipefail
cd "$(dirname "$0")/.."
people="${1:-610000}"
landing="${2:-$((people / 100))}"
BENCH_DIR="${BENCH_DIR:-/var/tmp/profiledb-bench}"
root="$BENCH_DIR/incr-$people"
batch="$BENCH_DIR/incr-$people-landing"
full="$BENCH_DIR/incr-$people-full"
mkdir -p "$BENCH_DIR"
cargo build --release --locked --bin profiledb
pdb="${CARGO_TARGET_DIR:-$PWD/target}/release/profiledb"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"

rm -rf "$root" "$batch" "$full"
echo "history: $("$pdb" --data "$root" generate --people "$people" --seed 1 --as-of 2026-06-30 2>&1 | tail -1)"
"$pdb" --data "$root" run >"$BENCH_DIR/initial.log" 2>&1
land() { # seed, first person
  rm -rf "$batch"
  echo "landing: $("$pdb" --data "$batch" generate --people "$landing" --seed "$1" --first-person "$2" --as-of 2026-06-30 2>&1 | tail -1)"
  cp "$batch"/raw/events/* "$root"/raw/events/
}
land 2 "$people"
"$pdb" --data "$root" run >"$BENCH_DIR/landing1.log" 2>&1
land 3 $((people + landing))
cp -a "$root" "$full"
sync

timed() {
  local label="$1"; shift
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "$label max RSS %M KiB" "$@" 2>&1 | tee "$BENCH_DIR/$label.log" | grep -E "^  (ok|FAIL)|max RSS" || true
  end=$(date +%s.%N)
  echo "$label wall: $(echo "$end - $start" | bc) s"
}
echo "== incremental: profiledb run"
timed incremental "$pdb" --data "$root" run
echo "== full refresh: profiledb run --full-refresh"
timed full "$pdb" --data "$full" run --full-refresh
