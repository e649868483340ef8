#!/usr/bin/env python3
"""Quality benchmark: protocols Q1 to Q5 of ../shared/BENCHMARKS.md.

Trains with `voc train`, scores each task on its test split with `voc eval --json`, and prints a
markdown table of macro-F1 and accuracy (mean ± spread over the seeds) beside the TF-IDF baseline.
Every row of the table is one arm of ARMS below. A protocol's default arm is plain `voc train`
with the protocol's flags, so skip-gram pretraining of the embeddings (on by default) is in it.

    python3 bench/quality.py                          # everything, 3 seeds
    python3 bench/quality.py --only q2 --seeds 13     # a subset
    python3 bench/quality.py --quick --parallel 2     # the short list, seed 13
    python3 bench/quality.py --group options --seeds 13  # sharing, weighting, schedule arms
"""
import argparse, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VOC_SHARED_DATA", ROOT.parent / "shared" / "data"))
AIR, NSMC, BANK, KO = (DATA / d for d in ("airline", "nsmc", "banking77", "ko_chatbot"))

BASELINE = {  # BENCHMARKS.md, TF-IDF + logistic regression: (macro-F1, accuracy)
    ("Q1", "sentiment"): (77.22, 81.84),
    ("Q1", "reason"): (51.80, 63.78),
    ("Q2 low300", "sentiment"): (61.40, 72.34),
    ("Q2 low1000", "sentiment"): (68.89, 77.09),
    ("Q3", "sentiment"): (86.93, 86.94),
    ("Q3 low1000", "sentiment"): (74.62, 74.62),
    ("Q4", "topic"): (85.12, 85.50),  # ko_chatbot alone, all 9,264 train rows
    ("Q5", "intent"): (91.71, 91.69),
}

# Protocol: (train file, valid file or None for voc's own 10% hold-out, {task: test file}).
# Q4's train and valid files are made at run time (see q4_files).
PROTOCOLS = {
    "Q1": (AIR / "train.jsonl", AIR / "valid.jsonl", {"sentiment": AIR / "test.jsonl", "reason": AIR / "test.jsonl"}),
    "Q2 low300": (AIR / "train.jsonl", AIR / "valid.jsonl", {"sentiment": AIR / "test.jsonl"}),
    "Q2 low1000": (AIR / "train.jsonl", AIR / "valid.jsonl", {"sentiment": AIR / "test.jsonl"}),
    "Q3": (NSMC / "train.jsonl", NSMC / "valid.jsonl", {"sentiment": NSMC / "test.jsonl"}),
    "Q3 low1000": (NSMC / "train.jsonl", NSMC / "valid.jsonl", {"sentiment": NSMC / "test.jsonl"}),
    "Q4": (None, None, {"sentiment": NSMC / "test.jsonl", "topic": KO / "test.jsonl"}),
    "Q5": (BANK / "train.jsonl", None, {"intent": BANK / "test.jsonl"}),
}

MT = ["--tasks", "sentiment,reason", "--target-task", "sentiment"]
ST = ["--tasks", "sentiment"]
NA, NP, NG = ["--no-association"], ["--no-pretrain"], ["--no-ngrams"]
# Low-label runs take at least 1,500 steps, so the association losses (from step 500) get room.
L300 = ["--label-ids", str(AIR / "low300_ids.txt"), "--min-steps", "1500"]
L1000 = ["--label-ids", str(AIR / "low1000_ids.txt"), "--min-steps", "1500"]
N1000 = ["--label-ids", str(NSMC / "low1000_ids.txt"), "--min-steps", "1500"]
INIT_FROM = "+ voc pretrain --init-from"  # an arm named so runs `voc pretrain` on its train file first
LSTM = ["--encoder", "lstm"]
OPTIONS = [  # the multi-task methods of Ruder's overview, each against the default arm
    ("soft sharing", ["--sharing", "soft"]),
    ("cross-stitch", ["--sharing", "cross-stitch"]),
    ("uncertainty weighting", ["--loss-weighting", "uncertainty"]),
    ("alternate schedule", ["--schedule", "alternate"]),
]

ARMS = [  # (protocol, arm, voc train flags, groups), in the order the table prints them
    ("Q1", "multi-task", MT + NA, "quick main gpu"),
    ("Q1", "multi-task, no pretraining", MT + NA + NP, "main"),
    ("Q1", "multi-task, no n-grams", MT + NA + NG, "main"),
    *[("Q1", f"multi-task, {name}", MT + NA + f, "options") for name, f in OPTIONS],
    ("Q2 low300", "single-task", ST + NA + L300, "quick main gpu"),
    ("Q2 low300", "single-task, no pretraining", ST + NA + L300 + NP, "quick main"),
    ("Q2 low300", "single-task, no n-grams", ST + NA + L300 + NG, "main"),
    ("Q2 low300", f"single-task {INIT_FROM}", ST + NA + L300, "main"),
    ("Q2 low300", "multi-task", MT + NA + L300, "main gpu"),
    ("Q2 low300", "multi-task + association", MT + L300, "quick main gpu"),
    ("Q2 low300", "multi-task + association, balanced batches", MT + L300 + ["--balanced-batch"], "main"),
    ("Q2 low300", "multi-task + association, no pretraining", MT + L300 + NP, "quick main"),
    *[("Q2 low300", f"multi-task, {name}", MT + NA + L300 + f, "options") for name, f in OPTIONS],
    ("Q2 low1000", "single-task", ST + NA + L1000, "main"),
    ("Q2 low1000", "single-task, no pretraining", ST + NA + L1000 + NP, "main"),
    ("Q2 low1000", "multi-task", MT + NA + L1000, "main"),
    ("Q2 low1000", "multi-task + association", MT + L1000, "main"),
    ("Q3", "single-task", ST + NA + ["--epochs", "4"], "main"),
    ("Q3 low1000", "single-task", ST + NA + N1000, "main"),
    ("Q3 low1000", "association", ST + N1000, "main"),
    ("Q4", "multi-task", ["--tasks", "sentiment,topic", "--target-task", "topic"], "main"),
    # The BiLSTM encoder: skip-gram on the run's own text (voc train's default) against
    # `voc pretrain`, which also trains the BiLSTM as a forward and backward language model.
    ("Q1", "lstm, multi-task", MT + NA + LSTM, "lstm"),
    ("Q1", f"lstm, multi-task {INIT_FROM} (skip-gram + LM)", MT + NA + LSTM, "lstm"),
    ("Q2 low300", "lstm, single-task", ST + NA + L300 + LSTM, "lstm"),
    ("Q2 low300", f"lstm, single-task {INIT_FROM} (skip-gram + LM)", ST + NA + L300 + LSTM, "lstm"),
    ("Q5", "single-task", ["--tasks", "intent"], "quick main gpu"),
    ("Q5", "single-task, no pretraining", ["--tasks", "intent"] + NP, "main"),
]


def lines(path):
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


def q4_files(tmp):
    """nsmc/train + the first 90% of ko_chatbot/train; valid: nsmc/valid + the last 10%."""
    ko = lines(KO / "train.jsonl")
    cut = len(ko) * 9 // 10
    train, valid = tmp / "q4_train.jsonl", tmp / "q4_valid.jsonl"
    train.write_text("\n".join(lines(NSMC / "train.jsonl") + ko[:cut]) + "\n", encoding="utf-8")
    valid.write_text("\n".join(lines(NSMC / "valid.jsonl") + ko[cut:]) + "\n", encoding="utf-8")
    return train, valid


def voc_run(cmd):
    """Runs one voc command and returns its last stdout line; on failure, raises with its stderr tail."""
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {' '.join(cmd)}\n--- stderr tail ---\n{p.stderr[-3000:]}")
    return p.stdout.strip().splitlines()[-1]


def run_arm(args, store, proto, arm, flags, seed):
    """One training and its evaluations: ({task: (macro-F1, accuracy)}, train+eval s, pretrain s or None)."""
    train, valid, tests = PROTOCOLS[proto]
    out = Path(tempfile.mkdtemp(dir=store))
    device = ["--device", args.device]
    init, pretrain_secs = [], None
    if INIT_FROM in arm:
        t0 = time.time()
        # The encoder kind the arm trains decides what `voc pretrain` learns (an LSTM also
        # gets the language model).
        kind = flags[flags.index("--encoder"):][:2] if "--encoder" in flags else []
        encoder = voc_run([args.voc, "pretrain", "--text", train, "--store", out / "encoders", "--seed", seed]
                          + kind + device)
        pretrain_secs = time.time() - t0
        init = ["--init-from", encoder]
    t0 = time.time()
    model = voc_run([args.voc, "train", "--train", train] + (["--valid", valid] if valid else [])
                    + ["--store", out, "--seed", seed] + flags + init + device + args.extra.split())
    scores = {}
    for test in sorted(set(tests.values())):
        report = json.loads(voc_run([args.voc, "eval", "--model", model, "--data", test, "--json"]))["tasks"]
        for task in (t for t, f in tests.items() if f == test):
            scores[task] = (report[task]["macro_f1"] * 100, report[task]["accuracy"] * 100)
    return scores, time.time() - t0, pretrain_secs


def mean_sd(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def machine():
    gpu = ""
    if shutil.which("nvidia-smi"):
        p = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        names = [n.strip() for n in p.stdout.splitlines() if n.strip()] if p.returncode == 0 else []
        gpu = ", GPU " + ", ".join(names) if names else ""
    return f"{platform.node()} {os.cpu_count()} CPUs{gpu}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="q1,q2,q3,q4,q5", help="comma-separated protocols")
    p.add_argument("--seeds", default="13,14,15")
    p.add_argument("--quick", action="store_true", help="seed 13 and the short list of arms only")
    p.add_argument("--group", default="", help="only arms of this group: main, options, lstm, quick or gpu (the rows run on the lent GPU)")
    p.add_argument("--voc", default=os.environ.get("VOC_BIN"))
    p.add_argument("--device", default="cpu", help="passed to every voc train and voc pretrain")
    p.add_argument("--parallel", type=int, default=1, help="trainings at once")
    p.add_argument("--extra", default="", help="extra flags for every voc train")
    p.add_argument("--match", default="", help="only protocols whose name contains this (e.g. 'low300')")
    p.add_argument("--exact", default="", help="only the protocol with exactly this name (e.g. 'Q3')")
    args = p.parse_args()
    args.voc = args.voc or subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], check=True,
                                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    seeds = [13] if args.quick else [int(s) for s in args.seeds.split(",")]
    only = args.only.lower().split(",")
    arms = [(i, a) for i, a in enumerate(ARMS)
            if a[0].split()[0].lower() in only and args.match in a[0]
            and (not args.exact or a[0] == args.exact)
            and ("quick" in a[3].split() or not args.quick)
            and (not args.group or args.group in a[3].split())]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    store = Path(tempfile.mkdtemp(prefix="voc-bench-"))
    print(f"models under {store}", file=sys.stderr)
    if any(a[0] == "Q4" for _, a in arms):
        PROTOCOLS["Q4"] = q4_files(store) + (PROTOCOLS["Q4"][2],)

    results, failed = {}, 0
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        jobs = {pool.submit(run_arm, args, store, proto, arm, flags, seed): (i, seed)
                for i, (proto, arm, flags, _) in arms for seed in seeds}
        for job in as_completed(jobs):
            i, seed = jobs[job]
            proto, arm = ARMS[i][:2]
            try:
                results[(i, seed)] = job.result()
            except RuntimeError as e:
                failed += 1
                print(f"FAILED {proto} {arm} seed {seed}: {e}", file=sys.stderr, flush=True)
                continue
            scores, secs, _ = results[(i, seed)]
            for task, (f1, acc) in scores.items():
                print(f"{proto:11} {arm:40} {task:9} seed {seed}: macro-F1 {f1:.2f} accuracy {acc:.2f} ({secs:.0f}s)",
                      file=sys.stderr, flush=True)

    print(f"\nQuality on {DATA} (test splits), commit {commit}, {machine()}, device {args.device}, "
          f"parallel {args.parallel}, seeds {','.join(map(str, seeds))}" + (f", extra flags `{args.extra}`" if args.extra else ""))
    print("\n| protocol | task | arm | macro-F1 (mean ± sd) | accuracy | TF-IDF macro-F1 | TF-IDF acc | Δ macro-F1 | train+eval s/run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (proto, arm, _, _) in arms:
        done = [results[(i, s)] for s in seeds if (i, s) in results]
        if not done:
            continue
        for task in PROTOCOLS[proto][2]:
            f1, sd = mean_sd([r[0][task][0] for r in done])
            acc = statistics.mean(r[0][task][1] for r in done)
            base = BASELINE.get((proto, task), (float("nan"), float("nan")))
            secs = statistics.mean(r[1] for r in done)
            print(f"| {proto} | {task} | {arm} | {f1:.2f} ± {sd:.2f} | {acc:.2f} | "
                  f"{base[0]:.2f} | {base[1]:.2f} | {f1 - base[0]:+.2f} | {secs:.0f} |")
    pretrained = [(i, a) for i, a in arms if any((i, s) in results and results[(i, s)][2] is not None for s in seeds)]
    if pretrained:
        print("\nPretraining cost (`voc pretrain` on the protocol's train file, once per seed, not in the s/run above)")
        print("\n| protocol | arm | voc pretrain s (mean ± sd) | runs |\n|---|---|---|---|")
        for i, (proto, arm, _, _) in pretrained:
            secs = [results[(i, s)][2] for s in seeds if (i, s) in results]
            m, sd = mean_sd(secs)
            print(f"| {proto} | {arm} | {m:.1f} ± {sd:.1f} | {len(secs)} |")
    if failed:
        sys.exit(f"{failed} run(s) failed; see above")


if __name__ == "__main__":
    main()
