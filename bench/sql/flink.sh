#!/usr/bin/env bash
# Nexmark side by side with Flink 2.3 (PyPI's apache-flink, its local
# cluster), in one run, on the same events from the same files: EVENTS
# events of the Nexmark generator exported once as JSON lines, each table
# in two files (split by key, each in event-time order), which both engines
# read as unbounded tables with event time (watermark 4 s behind it) and
# checkpoints every second, at parallelism 2; rows go to /dev/null (weir)
# and a blackhole sink (Flink). Time is weir's whole process and Flink's job
# (from submission to its end; the JVM's start and planning left out).
#   bench/sql/flink.sh [EVENTS]          (default 10000000)
#   QUERIES='q0 q5' bench/sql/flink.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/sql/query_script.sh
EVENTS=${1:-10000000}
VENV=.flink-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import pyflink" 2> /dev/null \
  || "$VENV/bin/pip" install --quiet "apache-flink==2.3.0"
cargo build --release --quiet
WEIR=$PWD/target/release/weir
DATA=$PWD/target/nexmark-json-$EVENTS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
declare -A COLUMNS=(
  [person]="id, name, email_address, credit_card, city, state, CAST(date_time AS BIGINT) AS date_time, CAST(date_time AS BIGINT) AS ts_ms, extra"
  [auction]="id, item_name, description, initial_bid, reserve, CAST(date_time AS BIGINT) AS date_time, CAST(date_time AS BIGINT) AS ts_ms, CAST(expires AS BIGINT) AS expires, CAST(expires AS BIGINT) AS expires_ms, seller, category, extra"
  [bid]="auction, bidder, price, channel, url, CAST(date_time AS BIGINT) AS date_time, CAST(date_time AS BIGINT) AS ts_ms, extra"
)
declare -A KEY=([person]=id [auction]=id [bid]=price)
declare -A DDL=(
  [person]="id BIGINT, name VARCHAR, email_address VARCHAR, credit_card VARCHAR, city VARCHAR, state VARCHAR, date_time TIMESTAMP(3), extra VARCHAR"
  [auction]="id BIGINT, item_name VARCHAR, description VARCHAR, initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR"
  [bid]="auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, date_time TIMESTAMP(3), extra VARCHAR"
)
if [ ! -f "$DATA/done" ]; then
  rm -rf "$DATA"
  for t in person auction bid; do
    mkdir -p "$DATA/$t"
    for part in 0 1; do
      "$WEIR" sql -w 2 --output "$WORK/export" --format json -e \
        "CREATE EXTERNAL TABLE $t STORED AS NEXMARK LOCATION '$t' OPTIONS ('events' '$EVENTS');
         SELECT ${COLUMNS[$t]} FROM $t WHERE ${KEY[$t]} % 2 = $part ORDER BY date_time" > /dev/null 2>&1
      mv "$WORK"/export/*.json "$DATA/$t/part-$part.json"
      rm -rf "$WORK/export"
    done
  done
  touch "$DATA/done"
fi
printf '%-5s %10s %10s %10s %16s\n' query "weir s" "Flink s" "weir/Flink" "weir events/s/core"
ddl() {
  echo "CREATE UNBOUNDED EXTERNAL TABLE $1 (${DDL[$1]}) STORED AS JSON LOCATION '$DATA/$1' OPTIONS ('event_time' 'date_time', 'watermark_delay_ms' '4000');"
}
for q in ${QUERIES:-q0 q1 q2 q3 q4 q5 q7 q8 q11}; do
  SCRIPT=$WORK/$q.sql
  query_script "$SCRIPT" "$q" ddl
  rm -rf "$WORK/ck"
  START=$(date +%s.%N)
  "$WEIR" sql -f "$SCRIPT" --checkpoint-dir "$WORK/ck" --checkpoint-interval 1s \
    --stop-when-idle 1s -w 2 > /dev/null 2> "$WORK/weir.err" || { cat "$WORK/weir.err"; exit 1; }
  END=$(date +%s.%N)
  FLINK=$("$VENV/bin/python" bench/sql/flink_nexmark.py "sql/nexmark/$q.sql" "$DATA" 2 2> "$WORK/flink.err" | tail -1) \
    || { tail -20 "$WORK/flink.err"; FLINK=nan; }
  python3 - "$q" "$START" "$END" "$FLINK" "$EVENTS" <<'PY'
import sys
q, start, end, flink, events = sys.argv[1:]
weir = float(end) - float(start)
flink = float(flink)
print(f"{q:<5} {weir:>10.2f} {flink:>10.2f} {weir / flink:>10.2f} {int(events) / weir / 2:>16,.0f}")
PY
done
