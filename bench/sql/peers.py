"""TPC-H on the peers, for bench/sql/tpch.sh: DataFusion (its Python
package) or DuckDB, two threads, over the Parquet files of `weir gen tpch`.
Prints one line per query: `qN SECONDS ROWS`."""
import sys
import time

engine, data, queries = sys.argv[1], sys.argv[2], sys.argv[3:]
tables = ["part", "supplier", "partsupp", "customer", "orders", "lineitem", "nation", "region"]

if engine == "datafusion":
    import datafusion

    ctx = datafusion.SessionContext(datafusion.SessionConfig().with_target_partitions(2))
    for t in tables:
        ctx.sql(f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{data}/{t}/'")

    def run(sql):
        return sum(b.num_rows for b in ctx.sql(sql).collect())
elif engine == "duckdb":
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    for t in tables:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}/*.parquet')")

    def run(sql):
        return len(con.execute(sql).fetchall())
else:
    sys.exit(f"unknown engine {engine}")

for path in queries:
    sql = open(path).read()
    start = time.perf_counter()
    rows = run(sql)
    name = path.rsplit("/", 1)[-1].removesuffix(".sql")
    print(f"{name} {time.perf_counter() - start:.4f} {rows}", flush=True)
