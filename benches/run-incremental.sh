#!/usr/bin/env bash
# Reproduces the "Incremental refresh of the default models" numbers in
# BENCHMARKS.md:
#   benches/run-incremental.sh [people] [landing people]
#   benches/run-incremental.sh 610000 6100     # ≈10M events, 1% new events
# Builds a history (generate + run), lands a further 1% of events (a
# generated batch of other people — numbered after the history's, so none
# of their identifiers is shared — events only, as new raw files) and runs
# once (the first run after a full build also builds the graph's index),
# lands a second 1% (the root stays as it is then), and times side by side on
# the same machine (the steady state), alternating, RUNS times each (3 by
# default), each run on a fresh copy of that root:
#   incremental:   profiledb run
#   full refresh:  profiledb run --full-refresh
# and prints each run's wall time, each model's median seconds from the
# runs' own output, the medians, min–max and the ratio of the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
people="${1:-610000}"
landing="${2:-$((people / 100))}"
BENCH_DIR="${BENCH_DIR:-/var/tmp/profiledb-bench}"
root="$BENCH_DIR/incr-$people"
batch="$BENCH_DIR/incr-$people-landing"
work="$BENCH_DIR/incr-$people-run"
runs="${RUNS:-3}"
mkdir -p "$BENCH_DIR"
cargo build --release --locked --bin profiledb
pdb="${CARGO_TARGET_DIR:-$PWD/target}/release/profiledb"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"

rm -rf "$root" "$batch" "$work" "$BENCH_DIR/incr-$people-full"
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

# One run on a fresh copy of the landed root: its wall seconds to stdout,
# its output to $BENCH_DIR/<label>-<n>.log.
timed() {
  local label="$1" n="$2"; shift 2
  rm -rf "$work"
  cp -a "$root" "$work"
  sync
  sleep 5
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "max RSS %M KiB" "$pdb" --data "$work" run "$@" >"$BENCH_DIR/$label-$n.log" 2>&1
  end=$(date +%s.%N)
  grep -q "^built " "$BENCH_DIR/$label-$n.log" || { tail -20 "$BENCH_DIR/$label-$n.log" >&2; exit 1; }
  if grep -q "^  FAIL" "$BENCH_DIR/$label-$n.log"; then grep "^  FAIL" "$BENCH_DIR/$label-$n.log" >&2; exit 1; fi
  echo "$end - $start" | bc
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -a incr fullr
for n in $(seq "$runs"); do
  incr+=("$(timed incremental "$n")")
  fullr+=("$(timed full "$n" --full-refresh)")
  echo "run $n: incremental ${incr[-1]} s, full refresh ${fullr[-1]} s"
done
rows() { grep -E "^  ok " "$BENCH_DIR/$1-1.log" | awk '{print $2}'; }
echo "== per model, median seconds of $runs runs (incremental | full refresh), first run's note"
for model in $(rows incremental); do
  i=$(for n in $(seq "$runs"); do grep -E "^  ok +$model " "$BENCH_DIR/incremental-$n.log" | grep -oE "[0-9.]+ s" | tail -1 | cut -d' ' -f1; done | median)
  f=$(for n in $(seq "$runs"); do grep -E "^  ok +$model " "$BENCH_DIR/full-$n.log" | grep -oE "[0-9.]+ s" | tail -1 | cut -d' ' -f1; done | median)
  note=$(grep -E "^  ok +$model " "$BENCH_DIR/incremental-1.log" | grep -oE "\(.*\)" || true)
  printf "  %-20s %8s | %8s  %s\n" "$model" "${i:-view}" "${f:-view}" "$note"
done
grep "max RSS" "$BENCH_DIR/incremental-1.log" | sed 's/^/incremental /'
grep "max RSS" "$BENCH_DIR/full-1.log" | sed 's/^/full refresh /'
mi=$(printf "%s\n" "${incr[@]}" | median); mf=$(printf "%s\n" "${fullr[@]}" | median)
echo "incremental: median $mi s (min $(printf "%s\n" "${incr[@]}" | sort -g | head -1), max $(printf "%s\n" "${incr[@]}" | sort -g | tail -1))"
echo "full refresh: median $mf s (min $(printf "%s\n" "${fullr[@]}" | sort -g | head -1), max $(printf "%s\n" "${fullr[@]}" | sort -g | tail -1))"
echo "ratio of medians: $(echo "scale=2; 100 * $mi / $mf" | bc)%"
