#!/usr/bin/env bash
# TPC-H under a memory budget: each of the 22 queries run alone by weir -w 2
# with --memory-budget, its peak RSS measured (GNU time), its spilled bytes
# and time as weir reports them. The issue's target: at SF 10 with 2GB,
# all 22 complete with peak RSS at most 3 GB per process.
#   bench/sql/budget.sh [SCALE] [BUDGET]        (default 10 2GB)
set -euo pipefail
cd "$(dirname "$0")/../.."
SCALE=${1:-10}
BUDGET=${2:-2GB}
DATA=target/tpch-sf$SCALE
cargo build --release --quiet
WEIR=target/release/weir
[ -d "$DATA/lineitem" ] || $WEIR gen tpch --scale "$SCALE" --parts 8 --output "$DATA"
OUT=$(mktemp -d)
printf '%-5s %10s %12s %14s  %s\n' query seconds "peak RSS" spilled result
worst=0
failed=0
for n in $(seq 1 22); do
  {
    for t in part supplier partsupp customer orders lineitem nation region; do
      echo "CREATE EXTERNAL TABLE $t STORED AS PARQUET LOCATION '$DATA/$t';"
    done
    cat sql/tpch/q$n.sql
    echo ";"
  } > "$OUT/q$n.sql"
  if /usr/bin/time -f '%M' -o "$OUT/rss" \
      $WEIR sql -f "$OUT/q$n.sql" -w 2 --memory-budget "$BUDGET" > "$OUT/out" 2> "$OUT/err"; then
    result=ok
  else
    result="FAILED: $(grep -v '^sql: table' "$OUT/err" | head -1)"
    failed=$((failed + 1))
  fi
  kib=$(tail -1 "$OUT/rss")
  line=$(grep -E ' in [0-9.]+ s on' "$OUT/out" || true)
  secs=$(sed -nE 's/.* in ([0-9.]+) s on.*/\1/p' <<< "$line")
  spilled=$(sed -nE 's/.*, (.*) spilled$/\1/p' <<< "$line")
  [ "$kib" -gt "$worst" ] && worst=$kib
  printf '%-5s %10s %9d MiB %14s  %s\n' "q$n" "${secs:--}" $((kib / 1024)) "${spilled:-0}" "$result"
done
echo "SF $SCALE, --memory-budget $BUDGET, -w 2: $((22 - failed)) of 22 complete, peak RSS $((worst / 1024)) MiB"
