"""The Python service a team would write instead of voc, serving the SAME model version.

FastAPI + uvicorn workers + PyTorch, one forward pass per request, the transcript and its
prediction committed to Postgres (asyncpg) before the answer: the design of
`../shared/peers/fastapi_peer.py`, extended to today's default model layout, which that peer
does not read: the CNN encoder plus the hashed token n-gram branch (`encoder.ngrams.*`), the
association embedding, one linear head per task, and the TF-IDF companion (`tfidf.*`) whose
probabilities are mixed with the network's. Every formula below mirrors `src/model/` (network.rs,
encoder.rs, ngram.rs, tfidf.rs); `--check` compares its answers with `voc predict`.

Serve:  VOC_MODEL=DIR DATABASE_URL=postgres://... uvicorn voc_peer:app --workers 2 --port P
Check:  python voc_peer.py --check DIR VOC_PREDICT_OUTPUT.jsonl TEXTS.txt
"""
import functools
import json
import os
import sys
import uuid

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer

torch.set_num_threads(1)

POSITION_PRIMES = [1_000_003, 999_983, 1_000_033, 999_979]
ORDER_PRIME = 1_048_573
WORD_TAG, CHAR_TAG = 1, 2
FNV_OFFSET, FNV_PRIME, MASK64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv_half(tag, text):
    """FNV-1a over the tag byte and the UTF-8 bytes of `text`, shifted right by one (tfidf.rs)."""
    h = (FNV_OFFSET ^ tag) * FNV_PRIME & MASK64
    for b in text.encode("utf-8"):
        h = (h ^ b) * FNV_PRIME & MASK64
    return h >> 1


def words(text):
    """Runs of two or more letters, digits or `_`, lower-cased per character."""
    out, word = [], []
    for ch in text:
        for c in ch.lower():
            if c.isalnum() or c == "_":
                word.append(c)
            else:
                if len(word) > 1:
                    out.append("".join(word))
                word = []
    if len(word) > 1:
        out.append("".join(word))
    return out


class Model:
    def __init__(self, folder):
        manifest = json.load(open(f"{folder}/model.json"))
        self.cfg = manifest["config"]["model"]
        if self.cfg["encoder"] != "cnn" or self.cfg["sharing"] != "hard":
            raise SystemExit(f"voc_peer reads CNN encoders with hard sharing, not {self.cfg['encoder']}/{self.cfg['sharing']}")
        self.w = load_file(f"{folder}/weights.safetensors")
        self.tasks = [(t["name"], t["labels"]) for t in manifest["tasks"]]
        self.target = manifest["target_task"]
        self.tok = Tokenizer.from_file(f"{folder}/tokenizer.json")
        self.unk = self.tok.token_to_id("[UNK]")
        self.ngrams = self.cfg["ngrams"] if "encoder.ngrams.table" in self.w else None
        self.tfidf = self.cfg["tfidf"] if "tfidf.features" in self.w else None
        if self.tfidf:
            self.features = self.w["tfidf.features"].numpy()
            self.idf = self.w["tfidf.idf"].numpy()
            self.tfidf_heads = [
                (self.w[f"tfidf.{n}.weight"].numpy(), self.w[f"tfidf.{n}.bias"].numpy(), float(self.w[f"tfidf.{n}.mix"][0]))
                for n, _ in self.tasks
            ]

    # --- the network (encoder.rs, ngram.rs, network.rs) ---
    def batch(self, texts):
        rows = [self.tok.encode(t, add_special_tokens=False).ids[: self.cfg["max_len"]] or [self.unk] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, torch.tensor([len(r) for r in rows])

    def cnn(self, embedded, lengths):
        x = embedded.transpose(1, 2)
        pooled = []
        for w in self.cfg["cnn_widths"]:
            out = F.relu(F.conv1d(x, self.w[f"encoder.conv{w}.weight"], self.w[f"encoder.conv{w}.bias"], padding=w - 1))
            valid = torch.arange(out.shape[2]).unsqueeze(0) < (lengths + w - 1).unsqueeze(1)
            pooled.append((out * valid.unsqueeze(1)).amax(2))
        return torch.cat(pooled, 1)

    def ngram_bag(self, ids, lengths, mask):
        cfg, table = self.ngrams, self.w["encoder.ngrams.table"]
        time = ids.shape[1]
        grams, valids = [], []
        for n in range(1, min(cfg["max_order"], time) + 1):
            width = time - n + 1
            h = torch.full((ids.shape[0], width), n * ORDER_PRIME, dtype=torch.int64)
            for k in range(n):
                h += ids[:, k : k + width] * POSITION_PRIMES[k % len(POSITION_PRIMES)]
            grams.append(h.remainder(cfg["buckets"]))
            valids.append((torch.arange(width).unsqueeze(0) + n - 1) < lengths.unsqueeze(1))
        out = masked_mean(F.embedding(torch.cat(grams, 1), table), torch.cat(valids, 1))
        char_table = self.w.get("encoder.ngrams.char_buckets")
        if char_table is not None:
            per_token = char_table[ids.flatten()].view(ids.shape[0], -1)
            valid = (per_token >= 0) & mask.repeat_interleave(char_table.shape[1], 1)
            out = out + masked_mean(F.embedding(per_token.clamp_min(0), table), valid)
        return out

    def network(self, texts):
        ids, lengths = self.batch(texts)
        mask = torch.arange(ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        embedded = F.embedding(ids, self.w["encoder.embedding.weight"]) * mask.unsqueeze(-1)
        parts = [self.cnn(embedded, lengths)]
        if self.ngrams:
            parts.append(self.ngram_bag(ids, lengths, mask))
        feats = torch.cat(parts, 1)
        emb = F.linear(feats, self.w["association.weight"], self.w["association.bias"])
        return [
            F.softmax(F.linear(emb if name == self.target else feats, self.w[f"heads.{name}.weight"], self.w[f"heads.{name}.bias"]), 1).numpy()
            for name, _ in self.tasks
        ]

    # --- the TF-IDF companion (tfidf.rs) ---
    @functools.lru_cache(maxsize=200_000)
    def char_grams(self, word):
        padded = " " + word + " "
        out = []
        for n in range(self.tfidf["char_min"], self.tfidf["char_max"] + 1):
            if len(padded) <= n:
                out.append(fnv_half(CHAR_TAG, padded))
                break
            out.extend(fnv_half(CHAR_TAG, padded[i : i + n]) for i in range(len(padded) - n + 1))
        return out

    def group(self, grams):
        """(feature rows, weights) of one gram group: counts times idf, L2-normalised."""
        grams = np.asarray(grams, dtype=np.int64)
        at = np.searchsorted(self.features, grams).clip(max=len(self.features) - 1)
        known = at[self.features[at] == grams]
        rows, counts = np.unique(known, return_counts=True)
        weights = counts * self.idf[rows]
        norm = np.sqrt((weights * weights).sum())
        return rows, (weights / norm if norm > 0 else weights)

    def tfidf_probabilities(self, texts):
        cfg = self.tfidf
        per_task = [[] for _ in self.tasks]
        for text in texts:
            ws = words(text)
            word_grams = [fnv_half(WORD_TAG, " ".join(ws[i : i + n])) for n in range(1, cfg["word_max"] + 1) for i in range(len(ws) - n + 1)]
            char_grams = [g for w in text.lower().split() for g in self.char_grams(w)] if cfg["char_max"] > 0 else []
            groups = [self.group(word_grams), self.group(char_grams)]
            for t, (weight, bias, _) in enumerate(self.tfidf_heads):
                scores = bias.astype(np.float64).copy()
                for rows, x in groups:
                    scores += x @ weight[rows]
                e = np.exp(scores - scores.max())
                per_task[t].append(e / e.sum())
        return [np.stack(p) for p in per_task]

    def predict(self, texts):
        probs = self.network(texts)
        if self.tfidf:
            own = self.tfidf_probabilities(texts)
            probs = [net * (1 - mix) + tf * mix for net, tf, (_, _, mix) in zip(probs, own, self.tfidf_heads)]
        answers = []
        for i in range(len(texts)):
            out = {}
            for (name, labels), p in zip(self.tasks, probs):
                j = int(p[i].argmax())
                out[name] = {"label": labels[j], "confidence": float(p[i][j]), "probabilities": dict(zip(labels, p[i].tolist()))}
            answers.append(out)
        return answers


def masked_mean(vectors, valid):
    valid = valid.float().unsqueeze(-1)
    return (vectors * valid).sum(1) / valid.sum(1).clamp_min(1.0)


def check(folder, voc_output, texts_file):
    """Compares this peer's answers with `voc predict`'s on the same texts; exits 1 on a mismatch."""
    model = Model(folder)
    texts = [l.rstrip("\n") for l in open(texts_file, encoding="utf-8")]
    theirs = [json.loads(l)["tasks"] for l in open(voc_output, encoding="utf-8")]
    ours = [a for i in range(0, len(texts), 64) for a in model.predict(texts[i : i + 64])]
    same, largest, total = 0, 0.0, 0
    for a, b in zip(ours, theirs):
        for task, _ in model.tasks:
            total += 1
            same += a[task]["label"] == b[task]["label"]
            largest = max(largest, max(abs(a[task]["probabilities"][k] - v) for k, v in b[task]["probabilities"].items()))
    print(f"peer vs voc predict: {same} of {total} labels equal, largest probability difference {largest:.2e}, {len(texts)} texts")
    sys.exit(0 if same == total and largest < 1e-4 else 1)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--check":
    check(*sys.argv[2:])
elif __name__ != "__main__":
    import asyncpg
    from fastapi import FastAPI
    from pydantic import BaseModel

    MODEL = Model(os.environ["VOC_MODEL"])
    app = FastAPI()
    pool = None

    @app.on_event("startup")
    async def start():
        global pool
        pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=16)
        async with pool.acquire() as c:
            await c.execute(
                "CREATE TABLE IF NOT EXISTS peer_predictions (id uuid PRIMARY KEY, text text NOT NULL, "
                "call_id text, prediction jsonb NOT NULL, created_at timestamptz DEFAULT now())"
            )

    class Item(BaseModel):
        text: str
        call_id: str | None = None

    class Req(BaseModel):
        text: str | None = None
        call_id: str | None = None
        items: list[Item] | None = None

    @app.get("/ready")
    async def ready():
        return {"ready": True}

    @app.post("/classify")
    async def classify(r: Req):
        items = r.items if r.items is not None else [Item(text=r.text or "", call_id=r.call_id)]
        preds = MODEL.predict([i.text for i in items])
        rows = [(uuid.uuid4(), i.text, i.call_id, json.dumps(p)) for i, p in zip(items, preds)]
        async with pool.acquire() as c:
            await c.executemany("INSERT INTO peer_predictions (id, text, call_id, prediction) VALUES ($1, $2, $3, $4)", rows)
        answers = [{"transcript_id": str(tid), "predictions": p} for (tid, _, _, _), p in zip(rows, preds)]
        return {"items": answers} if r.items is not None else answers[0]
