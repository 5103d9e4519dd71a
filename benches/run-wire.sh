#!/usr/bin/env bash
# Reproduces the wire-protocol numbers in BENCHMARKS.md:
#   benches/run-wire.sh [people] [seconds] [connections...]
#   benches/run-wire.sh 100000 20 8 64
# pgbench (PostgreSQL 15's) against profiledb and against a throwaway
# PostgreSQL 15 cluster holding the same profiles table (copied from
# profiledb with COPY), alternating, same scripts: benches/wire/point.sql
# (a prepared point lookup) and benches/wire/segment.sql (a segment count).
# Throughput is pgbench's; p50/p99 come from its per-transaction log.
set -euo pipefail
cd "$(dirname "$0")/.."
people="${1:-100000}"
seconds="${2:-20}"
shift 2 || true
clients=("${@:-8 64}")
[ ${#clients[@]} -eq 1 ] && read -r -a clients <<<"${clients[0]}"
BENCH_DIR="${BENCH_DIR:-/var/tmp/profiledb-bench}"
root="$BENCH_DIR/wire-$people"
pg_dir="$BENCH_DIR/pg15"
pg_bin=/usr/lib/postgresql/15/bin
pdb_port=55433
pg_port=55434
mkdir -p "$BENCH_DIR"
cargo build --release --locked --bin profiledb
pdb="${CARGO_TARGET_DIR:-$PWD/target}/release/profiledb"

if [ ! -d "$root/catalog" ]; then
  "$pdb" --data "$root" generate --people "$people" --seed 1 --as-of 2026-06-30
  "$pdb" --data "$root" run
fi

"$pdb" --data "$root" serve --listen "127.0.0.1:$pdb_port" >"$BENCH_DIR/wire-serve.log" 2>&1 &
pdb_pid=$!
cleanup() {
  kill "$pdb_pid" 2>/dev/null || true
  su postgres -c "$pg_bin/pg_ctl -D $pg_dir -m fast stop" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ ! -d "$pg_dir" ]; then
  install -d -o postgres "$pg_dir"
  su postgres -c "$pg_bin/initdb -D $pg_dir -A trust -U postgres" >/dev/null
fi
su postgres -c "$pg_bin/pg_ctl -D $pg_dir -o '-p $pg_port -k /tmp -c max_connections=200 -c shared_buffers=512MB' -l $pg_dir/log -w start" >/dev/null
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$pdb_port" && break; sleep 0.2; done

pdb_psql() { psql -X -q -h 127.0.0.1 -p "$pdb_port" -U bench -d profiledb "$@"; }
pg_psql() { psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres "$@"; }

# The same tables on both sides: profiles (PostgreSQL types from
# profiledb's information_schema, a primary key on PostgreSQL as any
# PostgreSQL user would have), bench_ids (row number -> profile id), and
# the segment view.
pdb_psql -c "DROP TABLE IF EXISTS bench_ids" \
  -c "CREATE TABLE bench_ids AS SELECT row_number() OVER (ORDER BY profile_id) AS n, profile_id FROM profiles" \
  -c "CREATE OR REPLACE VIEW segments.big_spenders AS SELECT profile_id FROM profiles WHERE total_revenue > 500 AND recency_days < 180"
columns=$(pdb_psql -At -c "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'profiles'")
pg_psql -c "DROP SCHEMA IF EXISTS segments CASCADE" -c "DROP TABLE IF EXISTS profiles, bench_ids" \
  -c "CREATE TABLE profiles ($columns, PRIMARY KEY (profile_id))" \
  -c "CREATE TABLE bench_ids (n bigint PRIMARY KEY, profile_id text)"
pdb_psql -c "\\copy profiles TO STDOUT" | pg_psql -c "\\copy profiles FROM STDIN"
pdb_psql -c "\\copy bench_ids TO STDOUT" | pg_psql -c "\\copy bench_ids FROM STDIN"
pg_psql -c "CREATE SCHEMA segments" \
  -c "CREATE VIEW segments.big_spenders AS SELECT profile_id FROM profiles WHERE total_revenue > 500 AND recency_days < 180" \
  -c "VACUUM ANALYZE"
ids=$(pdb_psql -At -c "SELECT count(*) FROM bench_ids")
check_pdb=$(pdb_psql -At -c "SELECT count(*) FROM segments.big_spenders")
check_pg=$(pg_psql -At -c "SELECT count(*) FROM segments.big_spenders")
[ "$check_pdb" = "$check_pg" ] || { echo "segment sizes differ: $check_pdb vs $check_pg"; exit 1; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%Y-%m-%d); $ids profiles, segment of $check_pdb"

# One pgbench run; prints "tps p50_ms p99_ms transactions".
bench() {
  local port=$1 user=$2 db=$3 script=$4 n=$5 logdir
  logdir=$(mktemp -d)
  (cd "$logdir" && pgbench -n -h 127.0.0.1 -p "$port" -U "$user" -M prepared -c "$n" -j 2 -T "$seconds" \
    -D ids="$ids" -f "$OLDPWD/benches/wire/$script" -l --log-prefix=tx "$db" >summary 2>&1) || {
    cat "$logdir/summary" >&2
    return 1
  }
  local tps
  tps=$(awk '/^tps = /{print $3}' "$logdir/summary")
  cat "$logdir"/tx* | awk '{print $3}' | sort -n | awk -v tps="$tps" '
    { v[NR] = $1 }
    END { printf "%.0f %.2f %.2f %d\n", tps, v[int(NR*0.5)]/1000, v[int(NR*0.99)]/1000, NR }'
  rm -rf "$logdir"
}

printf '%-8s %5s | %10s %8s %8s | %10s %8s %8s | %s\n' script conns "pdb tps" "p50 ms" "p99 ms" "pg tps" "p50 ms" "p99 ms" "tps ratio"
for script in point.sql segment.sql; do
  for n in "${clients[@]}"; do
    read -r a_tps a_p50 a_p99 _ < <(bench "$pdb_port" bench profiledb "$script" "$n")
    read -r b_tps b_p50 b_p99 _ < <(bench "$pg_port" postgres postgres "$script" "$n")
    ratio=$(awk -v a="$a_tps" -v b="$b_tps" 'BEGIN { printf "%.2f", a / b }')
    printf '%-8s %5s | %10s %8s %8s | %10s %8s %8s | %s\n' "${script%.sql}" "$n" "$a_tps" "$a_p50" "$a_p99" "$b_tps" "$b_p50" "$b_p99" "$ratio"
  done
done
