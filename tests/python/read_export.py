"""Reads an export file with readers independent of the collector and prints its rows as JSON.

usage: read_export.py FILE csv|parquet
CSV: Python's csv module, every value a string. Parquet: pyarrow, timestamps as epoch ms.
"""
import csv
import datetime
import json
import sys

path, kind = sys.argv[1], sys.argv[2]
if kind == "csv":
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
else:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        for k, v in row.items():
            if isinstance(v, datetime.datetime):
                row[k] = int(v.timestamp() * 1000)
    print(json.dumps({"schema": [f"{f.name}:{f.type}" for f in table.schema]}), file=sys.stderr)
print(json.dumps(rows))
