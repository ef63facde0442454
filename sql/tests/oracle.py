"""DataFusion's single-process answer to SQL statements, for weir's tests.

Reads statements (separated by ';' lines) on stdin, runs them in one
DataFusion session (its Python package), and prints each query's rows as
one JSON line: a list of rows, each a list of canonical values (floats with
7 significant digits, as the tests write weir's), in DataFusion's order.
"""
import datetime
import decimal
import json
import sys

import datafusion


def canonical(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        mantissa, exponent = f"{value:.6e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if isinstance(value, decimal.Decimal):
        # plain notation, as Arrow prints decimals (0.00000000, not 0E-8)
        return format(value, "f")
    if isinstance(value, (int, datetime.date, str)):
        return str(value)
    return str(value)


def main():
    config = datafusion.SessionConfig().with_target_partitions(1)
    ctx = datafusion.SessionContext(config)
    for statement in sys.stdin.read().split(";\n"):
        if not statement.strip():
            continue
        df = ctx.sql(statement)
        if statement.strip().upper().startswith("CREATE"):
            continue
        rows = []
        for batch in df.collect():
            columns = [column.to_pylist() for column in batch.columns]
            for i in range(batch.num_rows):
                rows.append([canonical(column[i]) for column in columns])
        print(json.dumps(rows))


main()
