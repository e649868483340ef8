#!/usr/bin/env python3
"""Training speed: protocols T1 and T2 of ../shared/BENCHMARKS.md, side by side in one run.

Trains voc's default CNN model (without the association loss, the embedding pretraining and
the n-gram branch, which the PyTorch twin does not have) on
airline/train for a few epochs twice: with `voc train`, and with the same network written in
PyTorch here. Prints examples/s (rows forwarded / seconds) for both and their ratio.

voc's figure is the one on its `done:` line: its clock also covers learning the tokenizer,
encoding the rows and one validation pass per epoch. The PyTorch clock covers the training steps
only (rows tokenized beforehand with a lowercase word split), so the comparison favours PyTorch.

    ~/.cache/voc/torch-venv/bin/python bench/train_speed.py            # needs torch
    ~/.cache/voc/torch-venv/bin/python bench/train_speed.py --device cuda
"""
import argparse, collections, json, os, platform, re, subprocess, tempfile, time, warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch works without it

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
AIR = Path(os.environ.get("VOC_SHARED_DATA", ROOT.parent / "shared" / "data")) / "airline"
TASKS = ["sentiment", "reason"]
VOCAB, MAX_LEN, DIM, WIDTHS, FILTERS, ASSOC, DROPOUT = 8000, 128, 128, (2, 3, 4, 5), 100, 128, 0.3
BATCH, LR, CLIP = 32, 1e-3, 5.0
PAD, UNK, NO_LABEL = 0, 1, -1


class Net(nn.Module):
    """voc's MultiTaskNet with the CNN encoder: the target task (sentiment) reads the association layer."""

    def __init__(self, classes):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, DIM)
        nn.init.normal_(self.embedding.weight, 0.0, 0.1)
        self.convs = nn.ModuleList(nn.Conv1d(DIM, FILTERS, w, padding=w - 1) for w in WIDTHS)
        features = FILTERS * len(WIDTHS)
        self.association = nn.Linear(features, ASSOC)
        self.sentiment = nn.Linear(ASSOC, classes[0])
        self.reason = nn.Linear(features, classes[1])
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, ids, lengths):
        positions = torch.arange(ids.size(1), device=ids.device)
        x = self.embedding(ids) * (positions[None] < lengths[:, None])[..., None]
        x = self.dropout(x).transpose(1, 2)
        pooled = []
        for w, conv in zip(WIDTHS, self.convs):
            out = conv(x).relu()  # a text of length L has L+w-1 output positions
            valid = torch.arange(out.size(2), device=ids.device)[None] < (lengths + w - 1)[:, None]
            pooled.append((out * valid[:, None]).amax(2))
        features = torch.cat(pooled, 1)
        embedding = self.association(features)
        return [self.sentiment(self.dropout(embedding)), self.reason(self.dropout(features))]


def masked_cross_entropy(logits, targets, weights):
    """voc's loss: class-weighted mean over the labeled rows; 0 when a batch has none."""
    row_weight = weights[targets.clamp_min(0)] * (targets != NO_LABEL)
    picked = -F.log_softmax(logits, -1).gather(1, targets.clamp_min(0)[:, None])[:, 0]
    return (picked * row_weight).sum() / row_weight.sum().clamp_min(1e-8)


def load(device):
    rows = [json.loads(line) for line in (AIR / "train.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if any(r.get(t) is not None for t in TASKS)]
    tokens = [re.findall(r"\w+|[^\w\s]", r["text"].lower())[:MAX_LEN] for r in rows]
    words = [w for w, _ in collections.Counter(w for t in tokens for w in t).most_common(VOCAB - 2)]
    index = {w: i + 2 for i, w in enumerate(words)}
    ids = torch.full((len(rows), MAX_LEN), PAD, dtype=torch.long)
    lengths = torch.tensor([max(1, len(t)) for t in tokens])
    for i, t in enumerate(tokens):
        ids[i, : len(t)] = torch.tensor([index.get(w, UNK) for w in t], dtype=torch.long)
    targets, classes, weights = [], [], []
    for task in TASKS:
        labels = sorted({r[task] for r in rows if r.get(task) is not None})
        y = torch.tensor([labels.index(r[task]) if r.get(task) is not None else NO_LABEL for r in rows])
        counts = torch.bincount(y[y != NO_LABEL], minlength=len(labels)).double()
        weights.append((counts.sum() / (len(labels) * counts.clamp_min(1))).float().to(device))
        targets.append(y.to(device))
        classes.append(len(labels))
    return ids.to(device), lengths.to(device), targets, classes, weights


def pytorch_speed(args):
    torch.manual_seed(13)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ids, lengths, targets, classes, weights = load(device)
    net = Net(classes).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    n = len(ids)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started, forwarded = time.perf_counter(), 0
    for _ in range(args.epochs):
        for batch in torch.randperm(n, device=device).split(BATCH):
            width = int(lengths[batch].max())
            logits = net(ids[batch, :width], lengths[batch])
            loss = sum(masked_cross_entropy(lg, y[batch], w) for lg, y, w in zip(logits, targets, weights))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), CLIP)
            optimizer.step()
            loss.item()  # voc reads the loss every step too
            forwarded += len(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return forwarded / seconds, seconds, n


def voc_speed(args):
    with tempfile.TemporaryDirectory(prefix="voc-speed-") as store:
        cmd = [args.voc, "train", "--train", AIR / "train.jsonl", "--valid", AIR / "valid.jsonl",
               "--tasks", "sentiment,reason", "--target-task", "sentiment", "--no-association", "--no-pretrain", "--no-ngrams", "--vocab-size", "8000",
               "--epochs", args.epochs, "--patience", "100", "--threads", args.threads,
               "--device", args.device, "--store", store]
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    done = re.search(r"done: \d+ steps, \d+ epochs, ([\d.]+)s, ([\d.]+) examples/s", p.stderr)
    if p.returncode != 0 or not done:
        raise SystemExit(f"voc train failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return float(done.group(2)), float(done.group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--voc", default=os.environ.get("VOC_BIN"))
    p.add_argument("--threads", type=int, default=1, help="libtorch threads, for both")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args()
    args.voc = args.voc or subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], check=True,
                                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    voc_eps, voc_secs = voc_speed(args)
    torch_eps, torch_secs, rows = pytorch_speed(args)

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    gpu = f", GPU {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"\nTraining speed on {AIR / 'train.jsonl'} ({rows:,} rows, sentiment + reason), {args.epochs} epochs, "
          f"batch {BATCH}, {args.threads} thread(s), device {args.device}{gpu}; commit {commit}, "
          f"{platform.node()} {os.cpu_count()} CPUs ({cpu})")
    print("\n| implementation | examples/s | wall s |\n|---|---|---|")
    print(f"| voc train (Rust, tch/libtorch) | {voc_eps:.0f} | {voc_secs:.1f} |")
    print(f"| PyTorch {torch.__version__} (Python) | {torch_eps:.0f} | {torch_secs:.1f} |")
    print(f"\nvoc / PyTorch: {voc_eps / torch_eps:.2f}×")


if __name__ == "__main__":
    main()
