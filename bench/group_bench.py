#!/usr/bin/env python3
"""Group coordinator benchmark: Fjord and Apache Kafka 4.4 in the same run.

  * time for a classic group of N members (10 and 100) to become stable:
    every member has its id (the KIP-394 handshake), then all send JoinGroup
    at once; the clock stops when the last member has its SyncGroup answer
    (one generation: the coordinator waits for every member it handed an id);
  * OffsetCommit requests per second: C connections, each pipelining D
    commits of one partition for a simple group (generation -1).

Both brokers run with group.initial.rebalance.delay.ms=0 and Fjord with
--smp 1 (the same single core for the coordinator as Kafka gets). Each
figure is the median of --rounds runs; the ratio Kafka/Fjord (time) or
Fjord/Kafka (rate) is printed with it.

Usage: bench/group_bench.py [--rounds 5] [--seconds 5] [--fjord PATH]
The raw request encoders are those of tests/groups/check.py.
"""
import argparse
import os
import statistics
import struct
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "groups"))
import check  # noqa: E402
from check import Conn, arr, commit, join, s16, sync  # noqa: E402


def wait_ready(port, group):
    c = Conn(port)
    try:
        check.wait_for(lambda: check.find_coordinator(c, group)["error"] == 0 and
                       check.describe(c, group)["error"] == 0, 60, "the coordinator")
    finally:
        c.close()


def time_to_stable(port, group, n):
    """Members behave as clients do: join, sync, then heartbeat (every 5 ms)
    and rejoin when told REBALANCE_IN_PROGRESS. Stable: every member synced
    in the same generation."""
    conns = [Conn(port) for _ in range(n)]
    try:
        ids = [join(c, group)["member"] for c in conns]  # MEMBER_ID_REQUIRED hands out the ids
        synced = [None] * n
        errors = []
        done = threading.Event()
        start = threading.Barrier(n + 1)

        def member(i):
            start.wait()
            c = conns[i]
            while not done.is_set():
                j = join(c, group, member=ids[i])
                if j["error"] != 0:
                    errors.append(("join", j["error"]))
                    return
                assign = [(m, b"") for m, _, _ in j["members"]] if j["leader"] == ids[i] else []
                s = sync(c, group, j["generation"], ids[i], assignments=assign)
                if s["error"] == 27:
                    continue
                if s["error"] != 0:
                    errors.append(("sync", s["error"]))
                    return
                synced[i] = j["generation"]
                while not done.is_set():
                    h = check.heartbeat(c, group, j["generation"], ids[i])["error"]
                    if h == 27:
                        synced[i] = None
                        break
                    if h != 0:
                        errors.append(("heartbeat", h))
                        return
                    time.sleep(0.005)

        threads = [threading.Thread(target=member, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        while not errors and not (synced[0] is not None and all(g == synced[0] for g in synced)):
            time.sleep(0.0005)
        took = time.perf_counter() - t0
        done.set()
        for t in threads:
            t.join()
        assert not errors, f"errors: {set(errors)}"
        return took
    finally:
        for c in conns:
            c.close()


def commit_rate(port, group, seconds, conns=4, depth=16):
    body = (s16(group) + struct.pack(">i", -1) + s16("") + s16(None)
            + arr([s16("gt") + arr([struct.pack(">iqi", 0, 1, -1) + s16("")])]))
    commit(Conn(port), group, -1, "", [("gt", 0, 0)])  # the simple group exists
    counts = [0] * conns
    stop = time.perf_counter() + seconds

    def run(i):
        c = Conn(port)
        hdr_corr = 0
        while time.perf_counter() < stop:
            out = b""
            for _ in range(depth):
                hdr_corr += 1
                msg = struct.pack(">hhi", 8, 7, hdr_corr) + s16("bench") + body
                out += struct.pack(">i", len(msg)) + msg
            c.sock.sendall(out)
            for _ in range(depth):
                n = struct.unpack(">i", c._read(4))[0]
                r = check.Reader(c._read(n)[4:])
                r.i32()
                r.i32()
                r.str()
                r.i32()
                r.i32()
                assert r.i16() == 0
            counts[i] += depth
        c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def measure(broker, rounds, seconds):
    check.ensure_topic(broker.port, "gt")
    out = {}
    for n in (10, 100):
        times = []
        for r in range(rounds):
            group = f"stable-{n}-{r}-{int(time.time() * 1000)}"
            wait_ready(broker.port, group)
            times.append(time_to_stable(broker.port, group, n))
        out[f"stable_{n}_ms"] = statistics.median(times) * 1000
    group = f"commits-{int(time.time() * 1000)}"
    wait_ready(broker.port, group)
    out["commits_per_s"] = commit_rate(broker.port, group, seconds)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--fjord", default=check.DEFAULT_FJORD)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fjord-group-bench.")
    results = {}
    fjord = check.Fjord(args.fjord, work)
    fjord.smp = 1
    kafka = check.Kafka(work)
    for b in (fjord, kafka):
        b.start()
        try:
            results[b.name] = measure(b, args.rounds, args.seconds)
        finally:
            b.stop()
        print(b.name, {k: round(v, 1) for k, v in results[b.name].items()}, flush=True)
    f, k = results["fjord"], results["kafka"]
    print("\n| metric | Fjord | Kafka | ratio |\n| --- | --- | --- | --- |")
    for n in (10, 100):
        key = f"stable_{n}_ms"
        print(f"| {n} members to Stable (ms, median of {args.rounds}) | {f[key]:.1f} | {k[key]:.1f} | "
              f"Kafka/Fjord {k[key] / f[key]:.1f}x |")
    print(f"| OffsetCommit requests/s (4 connections x 16 pipelined) | {f['commits_per_s']:.0f} | "
          f"{k['commits_per_s']:.0f} | Fjord/Kafka {f['commits_per_s'] / k['commits_per_s']:.1f}x |")


if __name__ == "__main__":
    main()
