#!/usr/bin/env python3
"""Writes ops-like hourly series for checking forecasts on data unlike the dev set, and runs the
naive baselines the forecaster must beat on them.

  forecast_cases.py write OUT_DIR [--nab-root ROOT]
  forecast_cases.py baseline naive|snaive --input IN.csv --horizon H --output OUT.csv

`write` puts `timestamp,value` CSVs in OUT_DIR, each as `eval_forecast.py --data-dir` reads them:
- generated with a fixed seed: taxi-like demand (30-minute steps for 107 days, daily and weekly
  seasons, holidays), 14 days of spiky load-balancer request counts, 14 days of database CPU
  (a slowly wandering level: naive is hard to beat), 14 days of memory in leak-and-collect cycles;
- with --nab-root, hourly sums of NAB's tweet volumes and hourly means of its traffic speeds (real
  series with daily seasons and bursts).
`baseline` is a forecasting command with the interface eval_forecast.py calls: the last value, or
the value one day before (the series' steps per day from its timestamps).

Standard library only.
"""
import argparse
import csv
import math
import os
import random
from datetime import datetime, timedelta

FMT = "%Y-%m-%d %H:%M:%S"


def write(path, stamps, values):
    with open(path, "w") as f:
        f.write("timestamp,value\n")
        for t, v in zip(stamps, values):
            f.write("%s,%s\n" % (t.strftime(FMT), v))


def taxi(rng):
    step, n = timedelta(minutes=30), 48 * 107
    t0 = datetime(2026, 1, 5)
    holidays = {20, 21, 55, 90}
    out = []
    for i in range(n):
        t = t0 + i * step
        day = (t - t0).days
        hour = t.hour + t.minute / 60
        daily = 0.35 + 0.65 * math.exp(-((hour - 18.5) ** 2) / 18) + 0.4 * math.exp(-((hour - 8.5) ** 2) / 4)
        weekly = 1.15 if t.weekday() in (4, 5) else (0.85 if t.weekday() == 6 else 1.0)
        level = 15000 * daily * weekly * (0.6 if day in holidays else 1.0) * (1 + 0.001 * day)
        out.append(round(max(0.0, rng.gauss(level, 0.06 * level))))
    return [t0 + i * step for i in range(n)], out


def lb_requests(rng):
    t0, n = datetime(2026, 2, 2), 24 * 14
    out = []
    for i in range(n):
        hour = i % 24
        rate = 800 * (0.3 + math.exp(-((hour - 14) ** 2) / 20)) * (0.7 if (i // 24) % 7 >= 5 else 1.0)
        v = rng.gauss(rate, math.sqrt(rate) * 3)
        if rng.random() < 0.04:
            v *= rng.uniform(2, 6)
        out.append(round(max(0.0, v)))
    return [t0 + timedelta(hours=i) for i in range(n)], out


def db_cpu(rng):
    t0, n = datetime(2026, 2, 2), 24 * 14
    level, out = 35.0, []
    for i in range(n):
        level = min(95.0, max(5.0, level + rng.gauss(0, 1.5)))
        out.append(round(min(100.0, max(0.0, level + 4 * math.sin(2 * math.pi * i / 24) + rng.gauss(0, 1.0))), 2))
    return [t0 + timedelta(hours=i) for i in range(n)], out


def memory(rng):
    t0, n = datetime(2026, 2, 2), 24 * 14
    base, period, out = 2.0e9, 37, []
    for i in range(n):
        out.append(round(base * (1 + 0.25 * (i % period) / period) + rng.gauss(0, 5e6)))
    return [t0 + timedelta(hours=i) for i in range(n)], out


def hourly(path, how):
    """Hourly sums or means of a NAB file (hours with no row are left out)."""
    buckets = {}
    with open(path) as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            t = datetime.strptime(row[0][:19], FMT).replace(minute=0, second=0)
            buckets.setdefault(t, []).append(float(row[1]))
    stamps = sorted(buckets)
    values = [sum(buckets[t]) if how == "sum" else round(sum(buckets[t]) / len(buckets[t]), 3)
              for t in stamps]
    return stamps, values


def cmd_write(args):
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    for name, gen in [("taxi_demand", taxi), ("lb_requests", lb_requests), ("db_cpu", db_cpu),
                      ("memory_cycles", memory)]:
        write(os.path.join(args.out, name + ".csv"), *gen(rng))
    if args.nab_root:
        data = os.path.join(args.nab_root, "data")
        for name in ("AAPL", "FB", "IBM", "KO"):
            p = os.path.join(data, "realTweets", "Twitter_volume_%s.csv" % name)
            write(os.path.join(args.out, "tweets_%s.csv" % name.lower()), *hourly(p, "sum"))
        for name in ("speed_6005", "occupancy_t4013"):
            p = os.path.join(data, "realTraffic", name + ".csv")
            write(os.path.join(args.out, "traffic_%s.csv" % name), *hourly(p, "mean"))


def cmd_baseline(args):
    with open(args.input) as f:
        rows = list(csv.reader(f))[1:]
    stamps = [datetime.strptime(r[0][:19], FMT) for r in rows]
    values = [float(r[1]) for r in rows]
    step = stamps[-1] - stamps[-2]
    per_day = max(1, round(timedelta(days=1) / step))
    out = []
    for i in range(args.horizon):
        if args.kind == "naive" or len(values) < per_day:
            v = values[-1]
        else:
            v = values[len(values) - per_day + i % per_day]
        out.append(v)
    with open(args.output, "w") as f:
        f.write("timestamp,forecast\n")
        for i, v in enumerate(out):
            f.write("%s,%s\n" % ((stamps[-1] + (i + 1) * step).strftime(FMT), v))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("out")
    w.add_argument("--nab-root", default=None)
    w.add_argument("--seed", type=int, default=20261204)
    b = sub.add_parser("baseline")
    b.add_argument("kind", choices=["naive", "snaive"])
    b.add_argument("--input", required=True)
    b.add_argument("--horizon", type=int, required=True)
    b.add_argument("--output", required=True)
    args = ap.parse_args()
    cmd_write(args) if args.cmd == "write" else cmd_baseline(args)


if __name__ == "__main__":
    main()
