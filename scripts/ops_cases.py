#!/usr/bin/env python3
"""Writes a labelled corpus of ops-like series in NAB's layout, for scoring the anomaly detector
on shapes an operator meets (not only NAB's dev files).

  ops_cases.py OUT_DIR [--seed N]

OUT_DIR gets data/<metric kind>/<kind>_<shape>_<n>.csv (timestamp,value), labels/
combined_windows.json and config/profiles.json, so ../shared/bench/nab/score.py --nab-root
OUT_DIR (and scripts/nab_eval.py) score it as they score NAB.

Metric kinds, each generated the way such a metric behaves: host CPU percent (daily load,
bounded 0-100), request counts (Poisson, daily and weekly seasons, growth), request latency
(lognormal, heavier under load), network bytes (bursty, daily), disk writes (periodic jobs),
process memory (leak-and-collect sawtooth), a temperature sensor (slow wander, daily), queue
depth (mostly zero, bursts). Incident shapes planted after the first 30 % of a series: spike,
level shift (up or down), slow drift, variance change, stuck (flat-lined) signal, outage (drop to
zero), broken daily pattern (a day without its peak); one series in six has none. Windows follow
NAB: 10 % of the series' length shared among its incidents, centred on each incident's start.

Standard library only; the same seed writes the same corpus.
"""
import argparse
import json
import math
import os
import random
from datetime import datetime, timedelta

PROFILES = {
    "standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}},
    "reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0}},
    "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}},
}

SHAPES = ["spike", "level_up", "level_down", "drift", "variance", "stuck", "outage", "broken_day",
          "none"]


def daily(i, per_day, phase=0.0):
    """0..1 diurnal load: low at night, a broad peak in the afternoon."""
    x = (i / per_day + phase) % 1.0
    return ((1 - math.cos(2 * math.pi * x)) / 2) ** 1.5


def weekly(i, per_day):
    return 0.65 if (i // per_day) % 7 in (5, 6) else 1.0


class Kind:
    """A metric kind: a base value per step and the noise around it."""

    def __init__(self, rng, per_day):
        self.rng = rng
        self.per_day = per_day


class Cpu(Kind):
    name = "cpu"

    def __init__(self, rng, per_day):
        super().__init__(rng, per_day)
        self.base = rng.uniform(5, 40)
        self.amp = rng.choice([0.0, rng.uniform(0.2, 1.0)]) * self.base
        self.sd = rng.uniform(0.03, 0.15) * self.base

    def level(self, i):
        return self.base + self.amp * daily(i, self.per_day)

    def noise(self, i, scale):
        v = self.rng.gauss(0, self.sd * scale)
        if self.rng.random() < 0.01:
            v += self.rng.expovariate(1 / (2 * self.sd))
        return v

    def clip(self, v):
        return round(min(100.0, max(0.0, v)), 3)


class Requests(Kind):
    name = "requests"

    def __init__(self, rng, per_day):
        super().__init__(rng, per_day)
        self.rate = rng.uniform(8, 400)
        self.growth = rng.uniform(0, 0.3)

    def level(self, i):
        return self.rate * (0.25 + daily(i, self.per_day)) * weekly(i, self.per_day) * (
            1 + self.growth * i / 4032)

    def noise(self, i, scale):
        return 0.0

    def sample(self, mean, scale):
        mean = max(mean, 0.0)
        if mean < 30:
            # Knuth's Poisson for small means.
            limit, k, p = math.exp(-mean), 0, 1.0
            while True:
                p *= self.rng.random()
                if p <= limit:
                    break
                k += 1
            return k
        return max(0, round(self.rng.gauss(mean, math.sqrt(mean) * scale)))

    def clip(self, v):
        return v


class Latency(Kind):
    name = "latency"

    def __init__(self, rng, per_day):
        super().__init__(rng, per_day)
        self.base = rng.uniform(20, 300)
        self.sigma = rng.uniform(0.1, 0.35)

    def level(self, i):
        return self.base * (1 + 0.3 * daily(i, self.per_day))

    def noise(self, i, scale):
        return 0.0

    def sample(self, mean, scale):
        return mean * math.exp(self.rng.gauss(0, self.sigma * scale))

    def clip(self, v):
        return round(max(v, 0.0), 2)


class Network(Kind):
    name = "network"

    def __init__(self, rng, per_day):
        super().__init__(rng, per_day)
        self.base = rng.uniform(1e5, 5e7)

    def level(self, i):
        return self.base * (0.3 + daily(i, self.per_day))

    def noise(self, i, scale):
        return 0.0

    def sample(self, mean, scale):
        v = mean * math.exp(self.rng.gauss(0, 0.25 * scale))
        if self.rng.random() < 0.02:
            v *= self.rng.uniform(2, 4)
        return v

    def clip(self, v):
        return round(max(v, 0.0))


class Disk(Kind):
    name = "disk"

    def __init__(self, rng, per_day):
        super().__init__(rng, per_day)
        self.base = rng.uniform(1e4, 1e6)
        self.job_every = rng.choice([12, 24, 72]) * per_day // 288
        self.job = rng.uniform(5, 20)

    def level(self, i):
        return self.base * (self.job if i % max(self.job_every, 2) == 0 else 1.0)

    def noise(self, i, scale):
        return 0.0

    def sample(self, mean, scale):
        return mean * math.exp(self.rng.gauss(0, 0.2 * scale))

    def clip(self, v):
        return round(max(v, 0.0))


class Memory(Kind):
    name = "memory"

    def __init__(self, rng, per_day):
        super().__init__(rng, per_day)
        self.base = rng.uniform(2e8, 2e9)
        self.period = rng.randint(150, 600)
        self.leak = rng.uniform(0.05, 0.3)
        self.sd = rng.uniform(0.002, 0.01)

    def level(self, i):
        return self.base * (1 + self.leak * (i % self.period) / self.period)

    def noise(self, i, scale):
        return self.rng.gauss(0, self.sd * self.base * scale)

    def clip(self, v):
        return round(max(v, 0.0))


class Temperature(Kind):
    name = "temperature"

    def __init__(self, rng, per_day):
        super().__init__(rng, per_day)
        self.base = rng.uniform(40, 80)
        self.wander = 0.0

    def level(self, i):
        self.wander = 0.995 * self.wander + self.rng.gauss(0, 0.15)
        return self.base + 4 * daily(i, self.per_day) + self.wander

    def noise(self, i, scale):
        return self.rng.gauss(0, 0.3 * scale)

    def clip(self, v):
        return round(v, 2)


class Queue(Kind):
    name = "queue"

    def __init__(self, rng, per_day):
        super().__init__(rng, per_day)
        self.burst = 0

    def level(self, i):
        if self.burst > 0:
            self.burst -= 1
        elif self.rng.random() < 0.01:
            self.burst = self.rng.randint(2, 10)
        return self.rng.uniform(5, 40) if self.burst else 0.0

    def noise(self, i, scale):
        return 0.0

    def clip(self, v):
        return round(max(v, 0.0))


KINDS = [Cpu, Requests, Latency, Network, Disk, Memory, Temperature, Queue]


def series(rng, kind_cls, shape, n, per_day):
    """Values with one planted incident of `shape`; returns (values, [incident start index])."""
    kind = kind_cls(rng, per_day)
    start = rng.randint(int(0.3 * n), int(0.85 * n))
    length = rng.randint(per_day // 4, per_day) if shape in ("stuck", "outage") else n
    scale_of = {"variance": 3.0}
    values = []
    stuck_value = None
    # Typical spread of the level, to size shifts against what the metric does anyway.
    levels = [kind.level(i) for i in range(per_day)]
    spread = (max(levels) - min(levels)) or abs(levels[0]) or 1.0
    magnitude = rng.uniform(0.6, 1.2) * spread if spread > 0 else 1.0
    for i in range(n):
        active = start <= i < start + length
        mean = kind.level(i)
        scale = 1.0
        if active:
            if shape == "level_up":
                mean = mean + magnitude
            elif shape == "level_down":
                mean = max(mean - 0.6 * magnitude, 0.1 * mean)
            elif shape == "drift":
                mean = mean + magnitude * min(1.0, (i - start) / (per_day / 2))
            elif shape == "variance":
                scale = scale_of["variance"]
            elif shape == "broken_day" and i < start + per_day:
                mean = kind.level(start)
        if hasattr(kind, "sample"):
            v = kind.sample(mean, scale)
        else:
            v = mean + kind.noise(i, scale)
        if shape == "spike" and start <= i < start + 2:
            v = v + 4 * magnitude + 3 * abs(v)
        if shape == "stuck" and active:
            stuck_value = values[-1] if stuck_value is None else stuck_value
            v = stuck_value
        if shape == "outage" and active:
            v = 0.0
        values.append(kind.clip(v))
    return values, ([] if shape == "none" else [start])


def windows(stamps, starts):
    if not starts:
        return []
    width = int(0.1 * len(stamps) / len(starts))
    out = []
    for s in starts:
        a, b = max(0, s - width // 2), min(len(stamps) - 1, s + width // 2)
        out.append([stamps[a].strftime("%Y-%m-%d %H:%M:%S.%f"),
                    stamps[b].strftime("%Y-%m-%d %H:%M:%S.%f")])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=20261204)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    labels = {}
    for kind_cls in KINDS:
        folder = os.path.join(args.out, "data", "ops_" + kind_cls.name)
        os.makedirs(folder, exist_ok=True)
        for shape in SHAPES:
            if kind_cls is Queue and shape in ("broken_day", "drift"):
                continue
            # 5-minute steps over two weeks (4,032 points), as cloud metrics come.
            per_day, n, step = 288, 4032, timedelta(minutes=5)
            t0 = datetime(2026, 3, 2)
            stamps = [t0 + k * step for k in range(n)]
            values, starts = series(rng, kind_cls, shape, n, per_day)
            name = "%s_%s.csv" % (kind_cls.name, shape)
            with open(os.path.join(folder, name), "w") as f:
                f.write("timestamp,value\n")
                for t, v in zip(stamps, values):
                    f.write("%s,%s\n" % (t.strftime("%Y-%m-%d %H:%M:%S"), v))
            labels["ops_%s/%s" % (kind_cls.name, name)] = windows(stamps, starts)
    os.makedirs(os.path.join(args.out, "labels"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "config"), exist_ok=True)
    with open(os.path.join(args.out, "labels", "combined_windows.json"), "w") as f:
        json.dump(labels, f, indent=1, sort_keys=True)
    with open(os.path.join(args.out, "config", "profiles.json"), "w") as f:
        json.dump(PROFILES, f, indent=1)
    print("%d series, %d incidents in %s" % (
        len(labels), sum(len(w) for w in labels.values()), args.out))


if __name__ == "__main__":
    main()
