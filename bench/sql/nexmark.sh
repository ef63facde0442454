#!/usr/bin/env bash
# Nexmark as streaming SQL (sql/nexmark/qN.sql: q0-q5, q7, q8, q11) at
# -w 2, each query a checkpointed streaming job over EVENTS generated events
# (as fast as the job takes them, a checkpoint every second, rows printed as
# CSV to /dev/null): events a second per core, against Flink 1.13's published
# per-core figures (nexmark/nexmark README), peak RSS, and the peak bytes of
# its retained checkpoints on disk (its state, as checkpoints hold it).
#   bench/sql/nexmark.sh [EVENTS]        (default 10000000)
#   QUERIES='q4 q7' bench/sql/nexmark.sh  (some of them)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/sql/query_script.sh
EVENTS=${1:-10000000}
cargo build --release --quiet
WEIR=$PWD/target/release/weir
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
declare -A FLINK=([q0]=155000 [q1]=158000 [q2]=175000 [q4]=34000 [q5]=22000 [q7]=12000)
printf '%-5s %10s %14s %10s %10s %9s %12s\n' query seconds "events/s/core" "Flink/core" "vs Flink" "RSS MB" "ckpt MB peak"
ddl() {
  echo "CREATE UNBOUNDED EXTERNAL TABLE $1 STORED AS NEXMARK LOCATION '$1' OPTIONS ('events' '$EVENTS');"
}
for q in ${QUERIES:-q0 q1 q2 q3 q4 q5 q7 q8 q11}; do
  SCRIPT=$WORK/$q.sql
  query_script "$SCRIPT" "$q" ddl
  rm -rf "$WORK/ck"
  START=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$WORK/rss" \
    "$WEIR" sql -f "$SCRIPT" --checkpoint-dir "$WORK/ck" --checkpoint-interval 1s -w 2 \
    > /dev/null 2> "$WORK/err" &
  JOB=$!
  # the checkpoints' bytes on disk (the retained ones), sampled every 0.5 s
  PEAK=0
  while kill -0 "$JOB" 2> /dev/null; do
    NOW=$(du -sb "$WORK/ck" 2> /dev/null | cut -f1 || echo 0)
    [ "${NOW:-0}" -gt "$PEAK" ] && PEAK=$NOW
    sleep 0.5
  done
  wait "$JOB" || { cat "$WORK/err"; exit 1; }
  END=$(date +%s.%N)
  python3 - "$q" "$START" "$END" "$EVENTS" "${FLINK[$q]:-0}" "$(tail -1 "$WORK/rss")" "$PEAK" <<'PY'
import sys
q, start, end, events, flink, rss, peak = sys.argv[1:]
secs = float(end) - float(start)
per_core = int(events) / secs / 2
flink = int(flink)
ratio = f"{per_core / flink:.2f}x" if flink else "-"
print(f"{q:<5} {secs:>10.2f} {per_core:>14,.0f} {flink or '-':>10} {ratio:>10} {int(rss) / 1024:>9.0f} {int(peak) / 2**20:>12.1f}")
PY
done
