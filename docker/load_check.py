#!/usr/bin/env python3
"""Steady POST /classify load for docker/test.sh (standard library only).

Runs CONCURRENCY keep-alive clients for SECONDS against http://HOST:PORT/classify, each text
with its own call id, and prints one JSON summary: answers by status, connection errors, and
whether 2xx answers came after the last failure (recovery). Writes the transcript id of every
2xx answer, one per line, to --ids, so the caller can check each has its row in Postgres.
"""
import argparse
import http.client
import json
import threading
import time

TEXTS = [
    "I was charged twice for my card and nobody answers my emails",
    "my top up is still pending after an hour",
    "thanks, the new card arrived and works fine",
    "why was my transfer declined, I have money on the account",
]


def worker(n, args, deadline, lock, results):
    conn = None
    i = 0
    while time.monotonic() < deadline:
        i += 1
        body = json.dumps({"text": TEXTS[i % len(TEXTS)], "call_id": f"load-{n}-{i}"})
        started = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(args.host, args.port, timeout=30)
            conn.request("POST", "/classify", body, {"content-type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
            status = "error"
            time.sleep(0.05)
        with lock:
            results["events"].append((started, status))
            if isinstance(status, int) and 200 <= status < 300:
                results["ids"].append(json.loads(payload)["transcript_id"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--ids", required=True, help="file for the ids of answered transcripts")
    args = p.parse_args()

    lock = threading.Lock()
    results = {"events": [], "ids": []}
    start = time.monotonic()
    deadline = start + args.seconds
    threads = [
        threading.Thread(target=worker, args=(n, args, deadline, lock, results))
        for n in range(args.concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    by_status = {}
    for _, status in results["events"]:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    failures = [t for t, s in results["events"] if not (isinstance(s, int) and 200 <= s < 300)]
    last_failure = max(failures) if failures else None
    ok_after = sum(
        1
        for t, s in results["events"]
        if isinstance(s, int) and 200 <= s < 300 and (last_failure is None or t > last_failure)
    )
    with open(args.ids, "w") as f:
        f.write("".join(f"{i}\n" for i in results["ids"]))
    print(json.dumps({
        "requests": len(results["events"]),
        "by_status": by_status,
        "first_failure_s": round(min(failures) - start, 2) if failures else None,
        "last_failure_s": round(last_failure - start, 2) if failures else None,
        "ok_after_last_failure": ok_after,
    }))


if __name__ == "__main__":
    main()
