#!/usr/bin/env bash
# weir's ALS against Spark MLlib's ALS (local[2]) on the same machine, on the same
# seeded 80/20 split of MovieLens 100K, with the same parameters (λ 0.1 weighted,
# 10 iterations), at ranks 10 and 50. Installs pyspark into .spark-venv (ignored)
# on first use. Per-iteration time leaves out start-up, loading and set-up for both: weir's
# is the mean of its iterations after the first, Spark's (fit of 10 - fit of 1) / 9.
# Test RMSE depends on the random initial factors, so a second table gives both
# systems' RMSE over initialisation seeds 1-5 (mean, least, largest).
#
#   bench/spark/als.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.spark-venv
if ! "$VENV/bin/python" -c 'import pyspark, numpy' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "pyspark==4.0.1" numpy
fi
scripts/data.sh movielens >/dev/null
cargo build -q --release -p weir -p weir-bench
split=$(mktemp -d)
trap 'rm -rf "$split"' EXIT
target/release/weir-bench als-split --dir "$split"

SEEDS="1 2 3 4 5"

# a weir als run at rank $1 (seed $2, default 42) on 2 workers; prints its per-iteration seconds (the
# mean of iterations 1.., from its progress lines: iteration 0 also builds) and
# its test RMSE
weir_fit() {
    target/release/weir als --ratings "$split/train.tsv" --test "$split/test.tsv" \
        --rank "$1" --lambda 0.1 --iterations 10 --seed "${2:-42}" -w 2 2>"$split/weir.log"
    local ms rmse
    ms=$(grep -E '^als: iteration [1-9][0-9]*:' "$split/weir.log" | grep -oE '\(([0-9.]+) ms\)' | tr -d '(ms)' |
        awk '{ s += $1; n += 1 } END { printf "%.6f", s / n / 1000 }')
    rmse=$(grep -oE 'test RMSE [0-9.]+;' "$split/weir.log" | tail -1 | grep -oE '[0-9.]+[0-9]')
    echo "$ms $rmse"
}

# mean, least and largest of the numbers on stdin
spread() { awk '{ s += $1; if (n == 0 || $1 < lo) lo = $1; if (n == 0 || $1 > hi) hi = $1; n += 1 }
    END { printf "%.4f | %.4f–%.4f", s / n, lo, hi }'; }

speed="| rank | weir s/iteration (2 workers) | Spark s/iteration (local[2]) | Spark / weir | weir test RMSE | Spark test RMSE |
|---:|---:|---:|---:|---:|---:|"
seeded="| rank | weir mean RMSE | weir range | Spark mean RMSE | Spark range |
|---:|---:|---|---:|---|"
for rank in 10 50; do
    weir_fit "$rank" >/dev/null # warm-up
    read -r weir rmse < <(weir_fit "$rank")
    out=$("$VENV/bin/python" bench/spark/als.py "$split" "$rank" 10 $SEEDS 2>"$split/spark.log" | grep '^spark') || {
        echo "als.sh: the Spark run failed; its log:" >&2
        grep -v '^\s*at ' "$split/spark.log" | tail -20 >&2
        exit 1
    }
    read -r _ spark _ spark_rmse <<<"$(grep '^spark ' <<<"$out")"
    speed+=$(printf "\n| %d | %.5f | %.3f | %.0fx | %s | %s |" "$rank" "$weir" "$spark" "$(echo "$spark / $weir" | bc -l)" "$rmse" "$spark_rmse")
    weir_seeds=$(for seed in $SEEDS; do weir_fit "$rank" "$seed" | cut -d' ' -f2; done | spread)
    spark_seeds=$(grep '^spark-seeds ' <<<"$out" | cut -d' ' -f2- | tr ' ' '\n' | spread)
    seeded+=$(printf "\n| %d | %s | %s |" "$rank" "$weir_seeds" "$spark_seeds")
done
echo "Per iteration, seed 42:"
echo "$speed"
echo
echo "Test RMSE over initialisation seeds $SEEDS:"
echo "$seeded"
