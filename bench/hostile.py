"""Hostile requests against a running `voc serve`, for bench/trust.sh.

Sends each request below over a raw socket (so that malformed HTTP reaches the server as
written), records the status it got, and counts the rows of `transcripts` and `labels`
before and after it: a rejected request must have stored nothing. Prints one table row per
request and a summary line; exits 1 when a rejected request stored something or the server
stopped answering.

    python3 bench/hostile.py HOST PORT DATABASE_URL CLASSIFY_KEY ADMIN_KEY
"""

import json
import socket
import subprocess
import sys

HOST, PORT, DB, CK, AK = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


def rows():
    out = subprocess.run(
        ["psql", DB, "-tAc", "SELECT (SELECT count(*) FROM transcripts) || ' ' || (SELECT count(*) FROM labels)"],
        check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1])


def raw(data: bytes, timeout=40.0, half_close=False):
    """Sends `data`, returns the status code of the answer ('closed' when the server closed
    the connection without one). `half_close` ends the client's side after sending (for
    requests whose body is shorter than they declare); otherwise the server reads what
    Content-Length says."""
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        line = buf.split(b"\r\n", 1)[0].split()
        return line[1].decode() if len(line) >= 2 and line[0].startswith(b"HTTP/") else "closed"
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        return "closed"
    finally:
        s.close()


def request(method, path, body=b"", headers=None, key=CK, content_type="application/json", half_close=False):
    h = {"Host": f"{HOST}:{PORT}", "Connection": "close"}
    if content_type is not None:
        h["Content-Type"] = content_type
    if key is not None:
        h["X-API-Key"] = key
    if isinstance(body, str):
        body = body.encode()
    h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return raw(head.encode("latin-1") + body, half_close=half_close)


def classify(body, **kw):
    return request("POST", "/classify", body, **kw)


def stored_transcript_id():
    out = subprocess.run(["psql", DB, "-tAc", "SELECT id FROM transcripts ORDER BY created_at DESC LIMIT 1"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return out


def feedback(labels, tid=None):
    tid = tid or stored_transcript_id()
    return request("POST", "/feedback", json.dumps({"transcript_id": tid, "labels": labels}), key=AK)


deep = "[" * 100_000 + "]" * 100_000
CASES = [
    # methods and request lines
    ("method: GET /classify", lambda: request("GET", "/classify")),
    ("method: unknown token AAAA1 /health", lambda: request("AAAA1", "/health")),
    ("method: PUT /classify", lambda: request("PUT", "/classify", '{"text":"hi"}')),
    ("method: DELETE /models/x", lambda: request("DELETE", "/models/x", key=AK)),
    ("request line: garbage bytes", lambda: raw(b"\x00\x01\x02garbage\r\n\r\n", half_close=True)),
    ("request line: TLS client hello", lambda: raw(bytes.fromhex("160301020001000100") + b"\r\n\r\n", half_close=True)),
    ("request line: HTTP/0.9 style", lambda: raw(b"GET /health\r\n\r\n", half_close=True)),
    ("request line: 10 KB path", lambda: request("GET", "/" + "a" * 10_000)),
    ("path: traversal /models/../../etc/passwd", lambda: request("GET", "/models/../../etc/passwd")),
    ("path: encoded traversal activate", lambda: request("POST", "/models/..%2F..%2Fetc/activate", "{}", key=AK)),
    # headers
    ("headers: 100 KB X-API-Key", lambda: classify('{"text":"hi"}', key="k" * 100_000)),
    ("headers: 2,000 headers", lambda: classify('{"text":"hi"}', headers={f"X-H{i}": "v" for i in range(2000)})),
    ("headers: no Host, HTTP/1.1", lambda: raw(b"POST /classify HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")),
    ("headers: Content-Length and chunked", lambda: classify('{"text":"hi"}', headers={"Transfer-Encoding": "chunked"})),
    ("headers: Content-Length larger than body", lambda: classify('{"text":"hi"}', headers={"Content-Length": "500"}, half_close=True)),
    ("headers: negative Content-Length", lambda: classify('{"text":"hi"}', headers={"Content-Length": "-1"})),
    ("headers: Content-Encoding gzip (not gzip)", lambda: classify('{"text":"hi"}', headers={"Content-Encoding": "gzip"})),
    ("content type: none", lambda: classify('{"text":"hi"}', content_type=None)),
    ("content type: text/plain", lambda: classify('{"text":"hi"}', content_type="text/plain")),
    ("content type: form", lambda: classify("text=hi", content_type="application/x-www-form-urlencoded")),
    # encodings
    ("encoding: invalid UTF-8 bytes", lambda: classify(b'{"text":"\xff\xfe\xfd"}')),
    ("encoding: overlong UTF-8 slash", lambda: classify(b'{"text":"\xc0\xaf"}')),
    ("encoding: UTF-16 body with BOM", lambda: classify('{"text":"hi"}'.encode("utf-16"))),
    ("encoding: lone surrogate escape", lambda: classify('{"text":"\\ud800"}')),
    ("encoding: NUL in text", lambda: classify('{"text":"a\\u0000b"}')),
    ("encoding: NUL in metadata", lambda: classify('{"text":"hi","metadata":{"k":"\\u0000"}}')),
    # JSON shape and depth
    ("json: empty body", lambda: classify("")),
    ("json: truncated", lambda: classify('{"text":"hi"')),
    ("json: array", lambda: classify("[]")),
    ("json: string", lambda: classify('"hi"')),
    ("json: no text", lambda: classify("{}")),
    ("json: text null", lambda: classify('{"text":null}')),
    ("json: text number", lambda: classify('{"text":5}')),
    ("json: unknown field", lambda: classify('{"text":"hi","evil":1}')),
    ("json: nested 100,000 deep", lambda: classify(deep)),
    ("json: metadata nested 100,000 deep", lambda: classify('{"text":"hi","metadata":' + deep + "}")),
    ("json: duplicate text keys", lambda: classify('{"text":"hi","text":"there"}')),
    # sizes
    ("size: 2 MB text", lambda: classify(json.dumps({"text": "a" * 2_000_000}))),
    ("size: empty text", lambda: classify('{"text":""}')),
    ("size: whitespace text", lambda: classify('{"text":"   \\n\\t "}')),
    ("size: 100,000 items", lambda: classify(json.dumps({"items": [{"text": "x"}] * 100_000}))),
    ("size: 257 items (over the limit)", lambda: classify(json.dumps({"items": [{"text": "x"}] * 257}))),
    ("size: items empty", lambda: classify('{"items":[]}')),
    ("size: one bad item of three", lambda: classify('{"items":[{"text":"a"},{"text":""},{"text":"b"}]}')),
    ("size: 10 KB call_id", lambda: classify(json.dumps({"text": "hi", "call_id": "c" * 10_000}))),
    # Unicode
    ("unicode: zero-width only text", lambda: classify('{"text":"\\u200b\\u200b\\u2060"}')),
    ("unicode: feedback label with zero-width space", lambda: feedback({"sentiment": "positive\u200b"})),
    ("unicode: feedback label with control character", lambda: feedback({"sentiment": "pos\u0007itive"})),
    ("unicode: feedback unknown task", lambda: feedback({"nope": "x"})),
    ("unicode: feedback no labels", lambda: feedback({})),
    # auth
    ("auth: no key", lambda: classify('{"text":"hi"}', key=None)),
    ("auth: wrong key", lambda: classify('{"text":"hi"}', key="wrong")),
    ("auth: empty Bearer", lambda: classify('{"text":"hi"}', key=None, headers={"Authorization": "Bearer "})),
    ("auth: classify key on /feedback", lambda: request("POST", "/feedback", '{"transcript_id":"00000000-0000-0000-0000-000000000000","labels":{"sentiment":"positive"}}')),
    ("auth: classify key on POST /training-runs", lambda: request("POST", "/training-runs", "{}")),
    ("auth: key with a trailing NUL", lambda: classify('{"text":"hi"}', key=CK + "\x00")),
    ("auth: feedback for an unknown transcript", lambda: request("POST", "/feedback", '{"transcript_id":"00000000-0000-0000-0000-000000000000","labels":{"sentiment":"positive"}}', key=AK)),
    ("auth: malformed Idempotency-Key", lambda: classify('{"text":"hi"}', headers={"Idempotency-Key": "\x7f" * 3})),
    ("query: /training-runs?limit=-1", lambda: request("GET", "/training-runs?limit=-1", key=AK)),
    ("query: /training-runs?limit=abc", lambda: request("GET", "/training-runs?limit=abc", key=AK)),
]


def main():
    print(f"{'#':>3}  {'request':<48} {'status':>7}  {'rows stored':>11}  verdict")
    bad = 0
    rejected = 0
    for i, (name, send) in enumerate(CASES, 1):
        before = rows()
        status = send()
        after = rows()
        stored = (after[0] - before[0]) + (after[1] - before[1])
        accepted = status.isdigit() and 200 <= int(status) < 300
        if accepted:
            verdict = "accepted"
        elif stored == 0:
            verdict = "rejected, nothing stored"
            rejected += 1
        else:
            verdict = "REJECTED BUT STORED"
            bad += 1
        print(f"{i:>3}  {name:<48} {status:>7}  {stored:>11}  {verdict}")
    alive = request("GET", "/health", key=None)
    print(f"hostile: {len(CASES)} requests, {rejected} rejected with nothing stored, "
          f"{len(CASES) - rejected - bad} accepted, {bad} rejected but stored; /health afterwards: {alive}")
    sys.exit(1 if bad or alive != "200" else 0)


main()
