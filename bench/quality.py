#!/usr/bin/env python3
"""Quality benchmark: protocols Q1, Q2 and Q3 of ../shared/BENCHMARKS.md.

Trains with `voc train`, scores the test split with `voc eval --json`, and prints a markdown
table of macro-F1 and accuracy (mean ± spread over the seeds) beside the TF-IDF baseline.

    python3 bench/quality.py                      # everything, 3 seeds
    python3 bench/quality.py --only q2 --seeds 13 # a subset
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VOC_SHARED_DATA", ROOT.parent / "shared" / "data"))

BASELINE = {  # BENCHMARKS.md, TF-IDF + logistic regression: (macro-F1, accuracy)
    ("Q1", "sentiment"): (77.22, 81.84),
    ("Q1", "reason"): (51.80, 63.78),
    ("Q2 low300", "sentiment"): (61.40, 72.34),
    ("Q2 low1000", "sentiment"): (68.89, 77.09),
    ("Q3", "sentiment"): (86.93, 86.94),
    ("Q3 low1000", "sentiment"): (74.62, 74.62),
}

def runs(only):
    air = DATA / "airline"
    nsmc = DATA / "nsmc"
    air_args = ["--tasks", "sentiment,reason", "--target-task", "sentiment"]
    out = []
    if "q1" in only:
        out.append(("Q1", "multi-task", air, air_args + ["--no-association"], ["sentiment", "reason"]))
    if "q2" in only:
        for n in ("low300", "low1000"):
            ids = ["--label-ids", str(air / f"{n}_ids.txt")]
            out.append((f"Q2 {n}", "single-task", air, ["--tasks", "sentiment", "--no-association"] + ids, ["sentiment"]))
            out.append((f"Q2 {n}", "multi-task", air, air_args + ["--no-association"] + ids, ["sentiment"]))
            out.append((f"Q2 {n}", "multi-task + association", air, air_args + ids, ["sentiment"]))
    if "q3" in only:
        out.append(("Q3", "single-task", nsmc, ["--tasks", "sentiment", "--no-association", "--epochs", "4"], ["sentiment"]))
        ids = ["--label-ids", str(nsmc / "low1000_ids.txt")]
        out.append(("Q3 low1000", "single-task", nsmc, ["--tasks", "sentiment", "--no-association"] + ids, ["sentiment"]))
        out.append(("Q3 low1000", "association", nsmc, ["--tasks", "sentiment"] + ids, ["sentiment"]))
    return out

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--only", default="q1,q2,q3")
    p.add_argument("--seeds", default="13,14,15")
    p.add_argument("--voc", default=os.environ.get("VOC_BIN"))
    p.add_argument("--extra", default="", help="extra flags for every voc train")
    p.add_argument("--match", default="", help="only protocols whose name contains this (e.g. 'low300')")
    p.add_argument("--exact", default="", help="only the protocol with exactly this name (e.g. 'Q3')")
    args = p.parse_args()
    voc = args.voc or subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], check=True,
                                     capture_output=True, text=True).stdout.strip().splitlines()[-1]
    seeds = [int(s) for s in args.seeds.split(",")]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    store = tempfile.mkdtemp(prefix="voc-bench-")
    results = {}
    for proto, arm, data, flags, tasks in runs(args.only.lower().split(",")):
        if args.match not in proto or (args.exact and proto != args.exact):
            continue
        for seed in seeds:
            t0 = time.time()
            cmd = [voc, "train", "--train", str(data / "train.jsonl"), "--valid", str(data / "valid.jsonl"),
                   "--store", store, "--seed", str(seed)] + flags + args.extra.split()
            train = subprocess.run(cmd, capture_output=True, text=True)
            if train.returncode != 0:
                sys.exit(f"training failed: {' '.join(cmd)}\n{train.stderr[-3000:]}")
            model = train.stdout.strip().splitlines()[-1]
            ev = subprocess.run([voc, "eval", "--model", model, "--data", str(data / "test.jsonl"), "--json"],
                                capture_output=True, text=True, check=True)
            report = json.loads(ev.stdout)["tasks"]
            secs = time.time() - t0
            for task in tasks:
                m = report[task]
                results.setdefault((proto, task, arm), []).append((m["macro_f1"] * 100, m["accuracy"] * 100, secs))
                print(f"{proto:11} {arm:26} {task:9} seed {seed}: macro-F1 {m['macro_f1']*100:.2f} "
                      f"accuracy {m['accuracy']*100:.2f} ({secs:.0f}s)", file=sys.stderr, flush=True)
    print(f"\nQuality on {DATA} (test splits), commit {commit}, {platform.node()} {os.cpu_count()} CPUs, seeds {args.seeds}"
          + (f", extra flags `{args.extra}`" if args.extra else ""))
    print("\n| protocol | task | arm | macro-F1 (mean ± sd) | accuracy | TF-IDF macro-F1 | TF-IDF acc | Δ macro-F1 | train+eval s/run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (proto, task, arm), vals in results.items():
        f1 = [v[0] for v in vals]; acc = [v[1] for v in vals]; secs = [v[2] for v in vals]
        sd = statistics.stdev(f1) if len(f1) > 1 else 0.0
        base = BASELINE.get((proto, task), (float("nan"), float("nan")))
        print(f"| {proto} | {task} | {arm} | {statistics.mean(f1):.2f} ± {sd:.2f} | {statistics.mean(acc):.2f} | "
              f"{base[0]:.2f} | {base[1]:.2f} | {statistics.mean(f1) - base[0]:+.2f} | {statistics.mean(secs):.0f} |")

if __name__ == "__main__":
    main()
