"""Runs one Nexmark query of sql/nexmark/ on Flink (PyFlink's local
cluster), streaming, over the JSON files that bench/sql/flink.sh exported,
into a blackhole sink; prints the job's seconds (from its submission to its
end: the JVM's start and the planning are left out).

    flink_nexmark.py QUERY.sql DATA_DIR PARALLELISM

weir's forms of the window table functions become Flink's:
tumble(t, c, s) is TABLE(TUMBLE(TABLE t, DESCRIPTOR(c), s)), hop likewise,
and session(t, c, gap, k) is TABLE(SESSION(TABLE t PARTITION BY k,
DESCRIPTOR(c), gap)); SET lines become configuration. Event time is each
row's date_time (milliseconds in the files), its watermark 4 s behind.
"""

import re
import sys
import time

from pyflink.table import EnvironmentSettings, Schema, TableDescriptor, TableEnvironment

COLUMNS = {
    "person": "id BIGINT, name STRING, email_address STRING, credit_card STRING, "
    "city STRING, state STRING, ts_ms BIGINT, extra STRING",
    "auction": "id BIGINT, item_name STRING, description STRING, initial_bid BIGINT, "
    "reserve BIGINT, ts_ms BIGINT, expires_ms BIGINT, seller BIGINT, category BIGINT, "
    "extra STRING, expires AS TO_TIMESTAMP_LTZ(expires_ms, 3)",
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, "
    "ts_ms BIGINT, extra STRING",
}


def call_end(sql, start):
    """The index just past the parenthesis that closes the one at start."""
    depth = 0
    for i in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[i], 0)
        if depth == 0:
            return i + 1
    raise ValueError("unbalanced parentheses")


def flink_form(sql):
    """weir's window table functions in Flink's form."""
    pattern = re.compile(r"\b(tumble|hop|session)\(")
    while (m := pattern.search(sql)) is not None:
        end = call_end(sql, m.end() - 1)
        args = [a.strip() for a in split_args(sql[m.end() : end - 1])]
        kind = m.group(1).upper()
        if kind == "SESSION":
            table, column, gap, *keys = args
            source = f"TABLE {table}" + (f" PARTITION BY {', '.join(keys)}" if keys else "")
            call = f"TABLE(SESSION({source}, DESCRIPTOR({column}), {gap}))"
        else:
            table, column, *sizes = args
            call = f"TABLE({kind}(TABLE {table}, DESCRIPTOR({column}), {', '.join(sizes)}))"
        sql = sql[: m.start()] + call + sql[end:]
    return sql


def split_args(text):
    """The arguments of a call, split at its top-level commas."""
    args, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "," and depth == 0:
            args.append(text[start:i])
            start = i + 1
    args.append(text[start:])
    return args


def main():
    query_file, data, parallelism = sys.argv[1:]
    text = open(query_file).read()
    text = "\n".join(l for l in text.splitlines() if not l.strip().startswith("--"))
    statements = [s.strip() for s in text.split(";") if s.strip()]
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", parallelism)
    config.set("execution.checkpointing.interval", "1s")
    config.set("execution.checkpointing.dir", f"file://{data}/../flink-checkpoints")
    for table, columns in COLUMNS.items():
        env.execute_sql(
            f"CREATE TABLE {table} ({columns}, "
            "date_time AS TO_TIMESTAMP_LTZ(ts_ms, 3), "
            "WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) "
            f"WITH ('connector' = 'filesystem', 'path' = 'file://{data}/{table}', "
            "'format' = 'json')"
        )
    *settings, query = statements
    for s in settings:
        m = re.match(r"SET\s+([\w.'-]+)\s*=\s*'(.*)'", s, re.IGNORECASE)
        name, value = m.group(1).strip("'"), m.group(2)
        if name == "table.exec.state.ttl":
            value = value.replace(" day", " d")
        config.set(name, value)
    result = env.sql_query(flink_form(query))
    schema = Schema.new_builder().from_row_data_type(result.get_schema().to_row_data_type())
    env.create_temporary_table(
        "sink", TableDescriptor.for_connector("blackhole").schema(schema.build()).build()
    )
    start = time.time()
    result.execute_insert("sink").wait()
    print(f"{time.time() - start:.2f}")


if __name__ == "__main__":
    main()
