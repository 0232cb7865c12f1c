#!/usr/bin/env python3
"""Per-category and leave-one-category-out NAB figures for the anomaly detector.

Reads the detector's results for several parameter sets (RUNS/<k>/<category>/<file>.csv, as
`cargo run --release -p tda-models --example detect_dir` writes them) and scores them with the
NAB scorer in ../shared/bench/nab/score.py (standard profile):

- for the default set (--default, 0): the score at the scorer's optimised threshold and at the
  detector's own threshold 0.5, over the corpus and per category;
- leave-one-category-out: for each category, the parameter set with the best score at 0.5 on the
  other categories is chosen and scored on the category left out; the total normalises the sum
  of those raw scores as NAB normalises a corpus (100 * (raw - null) / (perfect - null)).

A category's own figure is normalised the same way; a category without anomaly windows (whose
null and perfect scores are both 0) is shown as its raw score (0 is perfect, each false
positive costs 0.11).

Usage: nab_eval.py --runs DIR --nab-root ROOT [--default K] [--scorer PATH] [--json OUT]
"""
import argparse
import importlib.util
import json
import os
import sys
from collections import defaultdict


def load_scorer(path):
    spec = importlib.util.spec_from_file_location("nab_score", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def category(rel):
    return rel.split("/")[0]


class Corpus:
    def __init__(self, nab, root):
        self.nab = nab
        self.files, profiles, _ = nab.load_corpus(root)
        self.cost = profiles["standard"]["CostMatrix"]
        self.sweeper = nab.Sweeper(probationPercent=nab.PROBATION_PERCENT, costMatrix=self.cost)
        self.categories = sorted({category(r) for r in self.files})
        null = {r: [0.5] * len(ts) for r, (ts, _) in self.files.items()}
        self.null = {c: self.optimised(null, self.in_category(c))[1] for c in self.categories}
        self.perfect = {
            c: sum(len(self.files[r][1]) for r in self.in_category(c)) * self.cost["tpWeight"]
            for c in self.categories}

    def in_category(self, c):
        return [r for r in self.files if category(r) == c]

    def sweeps(self, scores, rels):
        return {r: self.sweeper.calcSweepScore(self.files[r][0], scores[r], self.files[r][1], r)
                for r in rels}

    def optimised(self, scores, rels):
        """(threshold, raw score) at the threshold that is best over `rels`."""
        lists = self.sweeps(scores, rels)
        rows = [x for lst in lists.values() for x in lst]
        best = sorted(self.sweeper.calcScoreByThreshold(rows), key=lambda x: x.score,
                      reverse=True)[0]
        return best.threshold, self.at(lists, best.threshold)

    def at(self, lists, threshold):
        return sum(self.nab.matching_row(self.sweeper.calcScoreByThreshold(lst), threshold).score
                   for lst in lists.values())

    def normalise(self, raw, cats):
        null = sum(self.null[c] for c in cats)
        perfect = sum(self.perfect[c] for c in cats)
        if perfect == null:
            return raw
        return 100.0 * (raw - null) / (perfect - null)


def shapes(corpus, scores):
    """Windows with a flag (score >= 0.5) and flags outside windows, by incident shape."""
    found = defaultdict(lambda: [0, 0, 0])
    for rel, lst in corpus.sweeps(scores, corpus.files).items():
        shape = os.path.splitext(rel.split("/")[-1])[0].split("_", 1)[-1]
        flagged = {x.windowName for x in lst if x.anomalyScore >= 0.5}
        found[shape][0] += sum(1 for w in corpus.files[rel][1]
                               if "%s|%s" % (rel, w[0]) in flagged)
        found[shape][1] += len(corpus.files[rel][1])
        found[shape][2] += sum(1 for x in lst if x.anomalyScore >= 0.5 and x.windowName is None)
    print("%-16s %8s %8s" % ("shape", "found", "false"))
    for shape, (tp, n, fp) in sorted(found.items()):
        print("%-16s %4d/%-3d %8d" % (shape, tp, n, fp))


def read_run(nab, run_dir, files):
    out = {}
    for rel in files:
        path = os.path.join(run_dir, rel)
        if not os.path.isfile(path):
            sys.exit("%s: missing" % path)
        out[rel] = nab.read_scores(path)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--nab-root", required=True)
    ap.add_argument("--default", type=int, default=0)
    ap.add_argument("--scorer", default=os.path.join(here, "..", "..", "shared", "bench", "nab",
                                                     "score.py"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--shapes", action="store_true",
                    help="also print, per file name after its first `_` (the incident shape in "
                         "scripts/ops_cases.py' corpus), windows flagged at 0.5 and false flags")
    args = ap.parse_args()
    nab = load_scorer(args.scorer)
    corpus = Corpus(nab, args.nab_root)
    sets = sorted(int(d) for d in os.listdir(args.runs) if d.isdigit())
    # Raw score at 0.5 per set, per category.
    at_half = defaultdict(dict)
    runs = {}
    for k in sets:
        runs[k] = read_run(nab, os.path.join(args.runs, str(k)), corpus.files)
        lists = corpus.sweeps(runs[k], corpus.files)
        for c in corpus.categories:
            at_half[k][c] = corpus.at({r: lists[r] for r in corpus.in_category(c)}, 0.5)
    cats = corpus.categories
    d = args.default
    thr, raw = corpus.optimised(runs[d], list(corpus.files))
    result = {"default": d, "standard": corpus.normalise(raw, cats), "threshold": thr,
              "standard_at_0.5": corpus.normalise(sum(at_half[d].values()), cats),
              "categories": {}, "leave_one_out": {}}
    print("set %d: standard %.2f (threshold %.4f), at 0.5 %.2f" % (
        d, result["standard"], thr, result["standard_at_0.5"]))
    print("%-24s %10s %10s %8s" % ("category", "optimised", "at 0.5", "windows"))
    for c in cats:
        _, craw = corpus.optimised(runs[d], corpus.in_category(c))
        row = {"optimised": corpus.normalise(craw, [c]),
               "at_0.5": corpus.normalise(at_half[d][c], [c]),
               "windows": int(corpus.perfect[c])}
        result["categories"][c] = row
        print("%-24s %10.2f %10.2f %8d" % (c, row["optimised"], row["at_0.5"], row["windows"]))
    loo_raw = 0.0
    for c in cats:
        rest = [x for x in cats if x != c]
        best = max(sets, key=lambda k: (sum(at_half[k][x] for x in rest), k == d))
        loo_raw += at_half[best][c]
        result["leave_one_out"][c] = {"chosen_set": best,
                                      "score_at_0.5": corpus.normalise(at_half[best][c], [c])}
        print("leave out %-22s chosen set %d, scores %.2f there" % (
            c, best, result["leave_one_out"][c]["score_at_0.5"]))
    result["leave_one_out_total"] = corpus.normalise(loo_raw, cats)
    if args.shapes:
        shapes(corpus, runs[d])
    for k in sets:
        print("set %d at 0.5: %.2f" % (k, corpus.normalise(sum(at_half[k].values()), cats)))
    print("SUMMARY standard=%.2f at_0.5=%.2f leave_one_category_out=%.2f" % (
        result["standard"], result["standard_at_0.5"], result["leave_one_out_total"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
