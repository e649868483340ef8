"""Builds the small data samples in tests/fixtures from ../shared/data (deterministic).

Only CC0 (NSMC) and CC BY 4.0 (banking77) data is sampled; see tests/fixtures/README.md.
"""
import json, random, sys
from pathlib import Path

shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
out = Path("tests/fixtures")
rng = random.Random(13)

def rows(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]

def write(name, items):
    with open(out / name, "w", encoding="utf-8") as f:
        for r in items:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

INTENTS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "balance_not_updated_after_bank_transfer",
           "declined_card_payment", "pending_top_up", "request_refund", "terminate_account",
           "transfer_not_received_by_recipient", "wrong_amount_of_cash_received"]

def banking(split, per_class):
    by = {}
    for r in rows(shared / "banking77" / f"{split}.jsonl"):
        if r["intent"] in INTENTS:
            by.setdefault(r["intent"], []).append(r)
    picked = []
    for intent in INTENTS:
        items = by[intent]
        rng.shuffle(items)
        picked += [{"id": "b77-" + r["id"], "text": r["text"], "category": r["intent"], "sentiment": None}
                   for r in items[:per_class]]
    rng.shuffle(picked)
    return picked

def nsmc(split, n):
    items = rows(shared / "nsmc" / f"{split}.jsonl")
    rng.shuffle(items)
    return [{"id": "nsmc-" + r["id"], "text": r["text"], "category": None, "sentiment": r["sentiment"]}
            for r in items[:n]]

b_train, b_test = banking("train", 80), banking("test", 20)
n_train, n_test = nsmc("train", 2000), nsmc("test", 400)
write("banking77_train.jsonl", [{"id": r["id"], "text": r["text"], "intent": r["category"]} for r in b_train])
write("banking77_test.jsonl", [{"id": r["id"], "text": r["text"], "intent": r["category"]} for r in b_test])
write("nsmc_train.jsonl", [{"id": r["id"], "text": r["text"], "sentiment": r["sentiment"]} for r in n_train])
write("nsmc_test.jsonl", [{"id": r["id"], "text": r["text"], "sentiment": r["sentiment"]} for r in n_test])
demo = b_train + n_train
rng.shuffle(demo)
write("demo_train.jsonl", demo)
test = b_test + n_test
rng.shuffle(test)
write("demo_test.jsonl", test)

# An intent the demo model has never seen, for the test that adds a class to a live task.
new_rng = random.Random(17)
new_items = [r for r in rows(shared / "banking77" / "train.jsonl") if r["intent"] == "apple_pay_or_google_pay"]
new_rng.shuffle(new_items)
write("new_intent.jsonl", [{"id": "b77-" + r["id"], "text": r["text"], "category": r["intent"]}
                           for r in new_items[:80]])
