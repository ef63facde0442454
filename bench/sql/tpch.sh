#!/usr/bin/env bash
# TPC-H on the same Parquet files, side by side in one run: weir -w 2, weir
# -n 2 (one worker each), DataFusion (Python package, target_partitions 2)
# and DuckDB (threads 2). Per-query times and each engine's geometric mean,
# as ratios to DataFusion.
#   bench/sql/tpch.sh [SCALE]        (default 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
SCALE=${1:-1}
DATA=target/tpch-sf$SCALE
scripts/sql-oracle.sh install
.venv-sql/bin/python -c "import duckdb" 2>/dev/null || .venv-sql/bin/pip install --quiet "duckdb==2.0.0"
cargo build --release --quiet
WEIR=target/release/weir
[ -d "$DATA/lineitem" ] || $WEIR gen tpch --scale "$SCALE" --parts 4 --output "$DATA"
QUERIES=$(for n in $(seq 1 22); do echo sql/tpch/q$n.sql; done)
SCRIPT=$(mktemp)
for t in part supplier partsupp customer orders lineitem nation region; do
  echo "CREATE EXTERNAL TABLE $t STORED AS PARQUET LOCATION '$DATA/$t';" >> "$SCRIPT"
done
for q in $QUERIES; do cat "$q"; echo ";"; done >> "$SCRIPT"
OUT=$(mktemp -d)
# weir prints "N rows in T s on W workers" per query, in order
times() { grep -E '^[0-9]+ rows? .*in [0-9.]+ s on' | sed -E 's/.* in ([0-9.]+) s on.*/\1/' | nl -v1 -w1 -s' ' | sed 's/^/q/'; }
$WEIR sql -f "$SCRIPT" -w 2 | times > "$OUT/weir-w2"
HOSTS=$(mktemp); printf '127.0.0.1:2301\n127.0.0.1:2302\n' > "$HOSTS"
$WEIR sql -f "$SCRIPT" -n 2 -p 1 -h "$HOSTS" > /dev/null &
$WEIR sql -f "$SCRIPT" -n 2 -p 0 -h "$HOSTS" | times > "$OUT/weir-n2"
wait
.venv-sql/bin/python bench/sql/peers.py datafusion "$DATA" $QUERIES | awk '{print $1, $2}' > "$OUT/datafusion"
.venv-sql/bin/python bench/sql/peers.py duckdb "$DATA" $QUERIES | awk '{print $1, $2}' > "$OUT/duckdb"
python3 - "$OUT" <<'PY'
import math, sys
out = sys.argv[1]
engines = ["weir-w2", "weir-n2", "datafusion", "duckdb"]
t = {e: dict(line.split() for line in open(f"{out}/{e}")) for e in engines}
print(f"{'query':<6}" + "".join(f"{e:>12}" for e in engines) + "   (seconds)")
for n in range(1, 23):
    q = f"q{n}"
    print(f"{q:<6}" + "".join(f"{float(t[e].get(q, 'nan')):>12.3f}" for e in engines))
geo = {e: math.exp(sum(math.log(max(float(v), 1e-4)) for v in t[e].values()) / len(t[e])) for e in engines}
print("geomean " + "  ".join(f"{e} {geo[e]:.3f}s" for e in engines))
print(f"weir -w 2 / DataFusion {geo['weir-w2'] / geo['datafusion']:.2f}x, "
      f"weir -n 2 / weir -w 2 {geo['weir-n2'] / geo['weir-w2']:.2f}x, "
      f"DuckDB / DataFusion {geo['duckdb'] / geo['datafusion']:.2f}x")
PY
