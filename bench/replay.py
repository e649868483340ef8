"""The learning-from-feedback replay (issue 4) and serving protocol S2, driven by bench/replay.sh.

1. Imports airline train with `voc import`, keeping only the low300 sentiment labels (reason is
   kept: in a call center the menu choice is known for every call).
2. Trains the starting model on that file, less the service's frozen evaluation set, with
   `voc train` (or reuses --store if it holds one: then it must have been trained the same way).
3. Starts `voc serve` with the scheduler on. The import's labels make the first run due at once:
   S2 is measured while it trains (wrk, /classify at concurrency 64), then again once it is idle.
4. Sends the remaining train sentiment labels as /feedback in batches; each batch crosses the
   run threshold, the service fine-tunes, and the gate promotes or rejects.
5. Prints, per run: its decision, wall time, the time from the feedback that triggered it to the
   first /classify answer from the new version, and the test macro-F1 of the active version.

Prints what it measured; asserts nothing about time or quality.
"""
import argparse, hashlib, json, os, random, subprocess, sys, time, urllib.request, uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--voc", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--database-url", required=True)
ap.add_argument("--store", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--batches", type=int, default=4)
ap.add_argument("--train-args", default="--epochs 3 --min-steps 1500")
ap.add_argument("--serve-args", default="")
ap.add_argument("--s2-duration", default="20s")
ap.add_argument("--s2-concurrency", type=int, default=64)
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--eval-share", type=float, default=0.1)
args = ap.parse_args()
data, work, store = Path(args.data), Path(args.work), Path(args.store)


def rows(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


def log(*a):
    print(*a, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


# 1. The import file: every train row, sentiment only on the low300 ids.
low = {l.strip() for l in open(data / "low300_ids.txt") if l.strip()}
train = rows(data / "train.jsonl")
import_file = work / "import.jsonl"
with open(import_file, "w", encoding="utf-8") as f:
    for r in train:
        f.write(json.dumps({"id": r["id"], "text": r["text"], "reason": r.get("reason"),
                            "sentiment": r["sentiment"] if r["id"] in low else None}) + "\n")
t = time.time()
out = run([args.voc, "import", "--database-url", args.database_url, "--tasks", "sentiment,reason",
           str(import_file)])
log(f"import: {out.stdout.strip()} in {time.time() - t:.1f} s")

# 2. The starting model, trained on the imported rows outside the service's frozen evaluation
# set (membership: SHA-256 of the transcript uuid, as src/learning/eval_set.rs computes it), so
# the gate never scores a model on rows it was trained on.
def frozen_eval(uuid_text, share=args.eval_share):
    digest = hashlib.sha256(uuidlib.UUID(uuid_text).bytes).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < share * 10_000


ids = dict(l.split("|") for l in run(["psql", args.database_url, "-tAc",
                                       "SELECT source_id || '|' || id FROM transcripts"]).stdout.split())
held_out = {sid for sid, u in ids.items() if frozen_eval(u)}
start_file = work / "start.jsonl"
with open(import_file) as src, open(start_file, "w") as dst:
    for line in src:
        if json.loads(line)["id"] not in held_out:
            dst.write(line)
log(f"frozen evaluation set: {len(held_out)} of {len(ids)} imported transcripts "
    f"({sum(1 for i in held_out if i in low)} of them with one of the {len(low)} sentiment labels)")
if not list(store.glob("*/model.json")):
    t = time.time()
    out = run([args.voc, "train", "--train", str(start_file), "--valid", str(data / "valid.jsonl"),
               "--tasks", "sentiment,reason", "--store", str(store)] + args.train_args.split())
    log(f"starting model: trained in {time.time() - t:.0f} s ({args.train_args})")


def test_f1(version):
    out = run([args.voc, "eval", "--model", str(store / version), "--data", str(data / "test.jsonl"),
               "--tasks", "sentiment,reason", "--json"])
    tasks = json.loads(out.stdout)["tasks"]
    return tasks["sentiment"]["macro_f1"] * 100, tasks["reason"]["macro_f1"] * 100


# The remaining sentiment labels, in equal batches; each batch is exactly one run's threshold.
rest = [r for r in train if r["id"] not in low]
random.Random(args.seed).shuffle(rest)
size = len(rest) // args.batches

# 3. The service.
port = 18000 + random.Random().randrange(1000)
base = f"http://127.0.0.1:{port}"
serve_log = open(work / "serve.log", "w")
server = subprocess.Popen(
    [args.voc, "serve", "--bind", f"127.0.0.1:{port}", "--store", str(store),
     "--database-url", args.database_url, "--learning-poll-ms", "1000", "--retrain-interval-s", "0",
     "--retrain-min-labels", str(size), "--eval-share", str(args.eval_share)]
    + args.serve_args.split(),
    stdout=serve_log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})


def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


for _ in range(300):
    try:
        call("GET", "/ready")
        break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("voc serve did not become ready; see " + str(work / "serve.log"))

start_version = call("GET", "/models/active")["version"]
f1s, f1r = test_f1(start_version)
log(f"starting version {start_version}: test macro-F1 sentiment {f1s:.2f}, reason {f1r:.2f} "
    f"({len(low)} sentiment labels imported, {len(low - held_out)} of them outside the frozen set)")

# wrk bodies: airline valid texts (not test: /classify stores them as unlabeled transcripts,
# which runs sample for the association loss).
bodies = work / "bodies.txt"
with open(bodies, "w") as f:
    for r in rows(data / "valid.jsonl"):
        f.write(json.dumps({"text": r["text"]}) + "\n")


def wrk(name):
    env = {**os.environ, "VOC_BENCH_BODIES": str(bodies), "VOC_BENCH_IDS": str(work / f"{name}.ids")}
    out = subprocess.run(["wrk", "-t2", f"-c{args.s2_concurrency}", f"-d{args.s2_duration}", "--timeout", "10s",
                          "-s", "bench/classify.lua", base], env=env, text=True, capture_output=True).stdout
    total = next((l.split()[0] for l in out.splitlines() if "requests in" in l), "?")
    picked = [l for l in out.splitlines() if l.startswith(("requests_per_s", "latency_ms", "2xx_responses"))]
    return " | ".join(picked) + f" | requests {total}"


def runs():
    return call("GET", "/training-runs?limit=500")["runs"]


def wait_run(after_id, on_wait=None):
    """Waits for a run with id > after_id to end; returns it."""
    while True:
        for r in runs():
            if r["id"] > after_id and r["state"] not in ("queued", "running"):
                return r
        if on_wait:
            on_wait()
        time.sleep(0.5)


# S2: while the import-triggered run trains, then idle.
log(f"== S2: POST /classify, airline/valid texts, concurrency {args.s2_concurrency}, {args.s2_duration}")
t = time.time()
while not any(r["state"] == "running" for r in runs()):
    if time.time() - t > 120:
        sys.exit("no run started after the import; see " + str(work / "serve.log"))
    time.sleep(0.5)
first = next(r for r in runs() if r["state"] == "running")
log(f"while run {first['id']} trains: {wrk('s2_training')}")
still = call("GET", f"/training-runs/{first['id']}")["state"]
log(f"  (run {first['id']} state at the end of the measurement: {still})")
done = wait_run(first["id"] - 1)
log(f"idle (no run):       {wrk('s2_idle')}")


def describe(r, trigger_time=None, first_answer=None):
    p = r.get("progress") or {}
    wall = (time.mktime(time.strptime(r["finished_at"][:19], "%Y-%m-%dT%H:%M:%S")) -
            time.mktime(time.strptime(r["started_at"][:19], "%Y-%m-%dT%H:%M:%S"))) if r.get("started_at") else 0
    line = (f"run {r['id']} ({r['trigger']}): {r['state']}, {wall:.0f} s, "
            f"{p.get('examples_per_second', 0):.0f} examples/s, train labels {r['snapshot'].get('train_labeled')}, "
            f"eval labels {r['snapshot'].get('eval_labeled')}")
    tasks = (r.get("evaluation") or {}).get("tasks", {})
    if "sentiment" in tasks:
        g = tasks["sentiment"]
        line += f"; gate sentiment {g['candidate_macro_f1'] * 100:.2f} vs active {g['active_macro_f1'] * 100:.2f}"
    if r["state"] == "promoted":
        s, rs = test_f1(r["candidate_version"])
        line += f"; TEST macro-F1 sentiment {s:.2f}, reason {rs:.2f}"
        if trigger_time and first_answer:
            line += f"; feedback-to-new-version {first_answer - trigger_time:.1f} s"
    else:
        line += f"; reason: {r['reason']}"
    return line


log("== replay: learning curve")
log(describe(done))

# 4. The remaining sentiment labels as feedback, in batches.
sent = len(low)
for b in range(args.batches):
    batch = rest[b * size:(b + 1) * size]
    if not batch:
        break
    last_id = max([r["id"] for r in runs()] or [0])
    active_before = call("GET", "/models/active")["version"]

    def send(r):
        call("POST", "/feedback", {"call_id": r["id"], "labels": {"sentiment": r["sentiment"]},
                                   "annotator": "replay"})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, batch))
    trigger_time = time.time()
    sent += len(batch)
    first_answer = [None]

    def probe():
        if first_answer[0] is None:
            v = call("POST", "/classify", {"text": "probe: my flight was delayed"})["model_version"]
            if v != active_before:
                first_answer[0] = time.time()

    r = wait_run(last_id, probe)
    if r["state"] == "promoted" and first_answer[0] is None:
        probe()
    log(f"after {sent} sentiment labels: " + describe(r, trigger_time, first_answer[0]))

server.terminate()
server.wait(timeout=30)
