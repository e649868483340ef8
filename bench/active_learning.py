"""Does the review queue pay off? (issue 11) Driven by bench/active_learning.sh.

For each seed, a starting model is trained with `voc train` on the airline low300 sentiment
labels (reason on every row, as a phone menu gives). Then, for each strategy (uncertain,
random), on a fresh database and a copy of that store, a real `voc serve`:

1. classifies every airline train text (POST /classify): they enter the review queue;
2. gets the 300 starting labels as /feedback;
3. repeats: leases the next --step items with GET /review/next?strategy=S, labels each with its
   true sentiment through POST /review/{lease}/label (an oracle annotator), asks for a
   training run (POST /training-runs) and waits for it to end (the gate promotes or rejects, as
   the service does), then waits until the queue is rescored under the active version;
4. at each checkpoint (--checkpoints labels) scores on airline test with `voc eval` (test
   macro-F1, sentiment) the active version (what the service answers with: the gate may have
   kept an older one) and the last run's candidate (what that many labels trained, gate or not).

Prints a line per step as it goes, then two tables (active, candidate): per checkpoint and
strategy the mean over seeds with the lowest and highest seed. Asserts nothing.
"""
import argparse, json, os, random, shutil, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--voc", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--database-url", required=True, help="a server URL; databases are made per arm")
ap.add_argument("--work", required=True)
ap.add_argument("--seeds", default="1,2,3")
ap.add_argument("--strategies", default="uncertain,random")
ap.add_argument("--step", type=int, default=100)
ap.add_argument("--checkpoints", default="500,1000,2000,3000")
ap.add_argument("--train-args", default="--epochs 3 --min-steps 1500")
ap.add_argument("--serve-args", default="")
args = ap.parse_args()
data, work = Path(args.data), Path(args.work)
checkpoints = [int(c) for c in args.checkpoints.split(",")]
admin = "bench-admin"


def log(*a):
    print(*a, flush=True)


def rows(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


def run(cmd):
    return subprocess.run(cmd, check=True, text=True, capture_output=True)


low = {l.strip() for l in open(data / "low300_ids.txt") if l.strip()}
train = rows(data / "train.jsonl")


def start_model(seed):
    store = work / f"start-{seed}"
    if list(store.glob("*/model.json")):
        return store
    start_file = work / f"start-{seed}.jsonl"
    with open(start_file, "w", encoding="utf-8") as f:
        for r in train:
            f.write(json.dumps({"id": r["id"], "text": r["text"], "reason": r.get("reason"),
                                "sentiment": r["sentiment"] if r["id"] in low else None}) + "\n")
    t = time.time()
    run([args.voc, "train", "--train", str(start_file), "--valid", str(data / "valid.jsonl"),
         "--tasks", "sentiment,reason", "--store", str(store), "--seed", str(seed)]
        + args.train_args.split())
    log(f"seed {seed}: starting model trained in {time.time() - t:.0f} s ({args.train_args})")
    return store


def test_f1(store, version):
    out = run([args.voc, "eval", "--model", str(store / version), "--data", str(data / "test.jsonl"),
               "--tasks", "sentiment,reason", "--json"])
    return json.loads(out.stdout)["tasks"]["sentiment"]["macro_f1"] * 100


class Service:
    def __init__(self, store, db_url, log_path):
        port = 18000 + random.Random().randrange(2000)
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [args.voc, "serve", "--bind", f"127.0.0.1:{port}", "--store", str(store),
             "--database-url", db_url, "--admin-api-keys", admin, "--learning-poll-ms", "500",
             "--retrain-interval-s", "0", "--retrain-min-labels", "100000000",
             "--max-items-per-request", "64"] + args.serve_args.split(),
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
        for _ in range(600):
            try:
                self.call("GET", "/ready")
                return
            except Exception:
                time.sleep(0.2)
        sys.exit(f"voc serve did not become ready; see {log_path}")

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {admin}"})
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def wait_run(svc, run_id):
    while True:
        r = svc.call("GET", f"/training-runs/{run_id}")
        if r["state"] not in ("queued", "running"):
            return r
        time.sleep(1)


def wait_rescored(svc):
    while True:
        q = svc.call("GET", "/review/queue")
        if all(t["rescore_pending"] == 0 for t in q["tasks"]):
            return
        time.sleep(1)


def arm(seed, strategy, start_store):
    store = work / f"{strategy}-{seed}"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(start_store, store)
    db = f"voc_al_{os.getpid()}_{seed}_{strategy}"
    server_url = args.database_url.rsplit("/", 1)[0]
    run(["psql", args.database_url, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])
    run(["psql", args.database_url, "-qc", f"CREATE DATABASE {db}"])
    svc = Service(store, f"{server_url}/{db}", work / f"serve-{strategy}-{seed}.log")
    truth = {}
    try:
        t = time.time()
        for i in range(0, len(train), 64):
            batch = train[i:i + 64]
            out = svc.call("POST", "/classify", {"items": [{"text": r["text"], "call_id": r["id"]} for r in batch]})
            for r, res in zip(batch, out["results"]):
                truth[res["transcript_id"]] = r
        log(f"seed {seed} {strategy}: classified {len(truth)} train texts in {time.time() - t:.0f} s")
        for tid, r in truth.items():
            if r["id"] in low:
                svc.call("POST", "/feedback", {"transcript_id": tid, "labels": {"sentiment": r["sentiment"]},
                                               "annotator": "start"})
        labels, results = len(low), {}
        while labels < max(checkpoints):
            for _ in range(args.step):
                item = svc.call("GET", f"/review/next?task=sentiment&strategy={strategy}&annotator=oracle")
                if item is None:
                    break
                svc.call("POST", f"/review/{item['lease_id']}/label",
                         {"label": truth[item["transcript"]["id"]]["sentiment"]})
                labels += 1
            t = time.time()
            requested = svc.call("POST", "/training-runs")
            r = wait_run(svc, requested["run"]["id"])
            wait_rescored(svc)
            active = svc.call("GET", "/models/active")["version"]
            line = f"seed {seed} {strategy}: {labels} labels, run {r['id']} {r['state']} in {time.time() - t:.0f} s"
            if labels in checkpoints:
                candidate = r.get("candidate_version") or active
                results[labels] = {"active": test_f1(store, active),
                                   "candidate": test_f1(store, candidate) if candidate != active else None}
                results[labels]["candidate"] = results[labels]["candidate"] or results[labels]["active"]
                line += (f", TEST macro-F1 sentiment: active {results[labels]['active']:.2f} ({active}),"
                         f" candidate {results[labels]['candidate']:.2f} ({candidate})")
            log(line)
        return results
    finally:
        svc.stop()
        run(["psql", args.database_url, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])


table = {}
for seed in [int(s) for s in args.seeds.split(",")]:
    start = start_model(seed)
    for strategy in args.strategies.split(","):
        table[(seed, strategy)] = arm(seed, strategy, start)

strategies = args.strategies.split(",")


def cell(vals):
    if not vals:
        return None, "–"
    mean = sum(vals) / len(vals)
    spread = f" ({min(vals):.2f}–{max(vals):.2f})" if len(vals) > 1 else ""
    return mean, f"{mean:.2f}{spread}"


for which in ("active", "candidate"):
    log(f"== test macro-F1 (sentiment), airline test, {which} version, by labels and strategy")
    log("| labels | " + " | ".join(strategies) + " | uncertain − random |")
    log("|---|" + "---|" * (len(strategies) + 1))
    for c in checkpoints:
        means, cells = {}, []
        for s in strategies:
            vals = [v[c][which] for (seed, st), v in table.items() if st == s and c in v]
            means[s], text = cell(vals)
            cells.append(text)
        gain = (f"{means['uncertain'] - means['random']:+.2f}"
                if means.get("uncertain") is not None and means.get("random") is not None else "–")
        log(f"| {c} | " + " | ".join(cells) + f" | {gain} |")
log(f"({len({seed for seed, _ in table})} seed(s); each cell the mean over seeds, lowest–highest seed in brackets)")
