"""Spark MLlib ALS on the split that weir-bench als-split wrote.

Usage: als.py SPLIT_DIR RANK ITERATIONS [SEED ...]
Prints: spark per-iteration seconds, the fit time of ITERATIONS, test RMSE
(seed 42); then, with SEEDs, a line `spark-seeds RMSE ...` with the test RMSE
of a fit of ITERATIONS from each seed.
Per-iteration time is (fit of ITERATIONS - fit of 1) / (ITERATIONS - 1), each
the least of three fits after a warm-up, so JVM start-up, data loading and
ALS's own set-up are left out.
"""
import sys
import time

from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession

split, rank, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seeds = [int(s) for s in sys.argv[4:]]
spark = (
    SparkSession.builder.master("local[2]")
    .config("spark.driver.memory", "4g")
    .config("spark.ui.enabled", "false")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
# ALS truncates its lineage every 10 iterations when it may checkpoint; without
# that, long fits die of a StackOverflowError
spark.sparkContext.setCheckpointDir(f"{split}/spark-checkpoints")
schema = "user INT, item INT, rating FLOAT"
train = spark.read.csv(f"{split}/train.tsv", sep="\t", schema=schema).cache()
test = spark.read.csv(f"{split}/test.tsv", sep="\t", schema=schema).cache()
train.count()
test.count()


def fit(n, seed=42):
    als = ALS(
        rank=rank,
        maxIter=n,
        regParam=0.1,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        coldStartStrategy="drop",
        seed=seed,
    )
    start = time.time()
    model = als.fit(train)
    model.userFactors.count()
    model.itemFactors.count()
    return model, time.time() - start


fit(2)  # warm-up
model, full = fit(iterations)
# the least of three fits each of 1 and of ITERATIONS iterations
one = min(fit(1)[1] for _ in range(3))
full = min([full] + [fit(iterations)[1] for _ in range(2)])
evaluator = RegressionEvaluator(metricName="rmse", labelCol="rating", predictionCol="prediction")
rmse = evaluator.evaluate(model.transform(test))
print(f"spark {(full - one) / (iterations - 1):.4f} {full:.3f} {rmse:.4f}")
if seeds:
    rmses = [evaluator.evaluate(fit(iterations, seed)[0].transform(test)) for seed in seeds]
    print("spark-seeds " + " ".join(f"{r:.4f}" for r in rmses))
spark.stop()
