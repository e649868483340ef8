#!/usr/bin/env python3
"""Holds a wrk run at an average request rate: every few seconds it counts the answers so far
(the transcript ids bench/classify.lua writes, one line per 2xx) and rewrites the per-request
wait that classify.lua reads from VOC_BENCH_DELAY_FILE, so the run's *cumulative* rate meets the
target: a slow stretch (a training run taking cores) is made up afterwards, up to the peak.

    python3 bench/pace.py IDS_PREFIX DELAY_FILE TARGET_RPS CONNECTIONS SECONDS

Prints one line per adjustment (elapsed s, answers, cumulative rate, new wait in ms).
"""
import glob
import os
import sys
import time

STEP_S = 5.0


def answers(prefix):
    total = 0
    for path in glob.glob(prefix + ".*"):
        with open(path, "rb") as f:
            total += sum(1 for line in f if len(line.strip()) == 36)
    return total


def next_wait_ms(target, connections, elapsed, done, window_rate, wait_ms):
    """The wait that makes the next STEP_S seconds bring the cumulative rate to `target`."""
    wanted = max(0.1 * target, (target * (elapsed + STEP_S) - done) / STEP_S)
    cycle_ms = connections * 1000.0 / max(window_rate, 1.0)  # wait + latency, per connection
    latency_ms = max(0.0, cycle_ms - wait_ms)
    return max(1.0, connections * 1000.0 / wanted - latency_ms)


def main():
    prefix, delay_file, target, connections, seconds = sys.argv[1:6]
    target, connections, seconds = float(target), int(connections), float(seconds)
    with open(delay_file) as f:
        wait_ms = float(f.read().strip())
    started = time.time()
    last_done, last_t = 0, started
    while time.time() - started < seconds:
        time.sleep(STEP_S)
        now = time.time()
        done = answers(prefix)
        window_rate = (done - last_done) / (now - last_t)
        elapsed = now - started
        wait_ms = next_wait_ms(target, connections, elapsed, done, window_rate, wait_ms)
        with open(delay_file + ".tmp", "w") as f:
            f.write(f"{wait_ms:.0f}\n")
        os.replace(delay_file + ".tmp", delay_file)
        print(f"{elapsed:.0f} s: {done} answers, {done / elapsed:.1f}/s so far, wait {wait_ms:.0f} ms", flush=True)
        last_done, last_t = done, now


if __name__ == "__main__":
    main()
