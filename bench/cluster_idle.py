#!/usr/bin/env python3
"""Many replicated partitions on an idle 3-node Fjord cluster (issue 13,
item 10): how long until every partition is led and in sync, whether the
cluster then settles (the partition hard states written per 10 s: each is a
new term or vote, so an election), and, after it, the idle CPU and RSS per
node. One JSON line on stdout; progress on stderr. Not a test.

usage: bench/cluster_idle.py [--partitions N] [--settle S] [--window S] [--binary PATH]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from harness import Node, cluster_view, free_ports, log, wait_for  # noqa: E402


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return -1


def hard_states_written(node, seconds):
    """Partition quorum-state files this node wrote in the last `seconds`."""
    cutoff = time.time() - seconds
    n = 0
    for name in os.listdir(node.dir):
        path = os.path.join(node.dir, name, "quorum-state")
        if name.startswith("many-") and os.path.exists(path) and os.path.getmtime(path) >= cutoff:
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=10000)
    ap.add_argument("--settle", type=int, default=60, help="seconds allowed for the post-creation elections")
    ap.add_argument("--window", type=int, default=30, help="seconds of idle CPU measured")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/src/app/fjord"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fjord-idle-")
    ports = free_ports(6)
    voters = ",".join(f"{i + 1}@127.0.0.1:{ports[3 + i]}" for i in range(3))
    nodes = [Node(args.binary, work, i + 1, ports[i], ports[3 + i], voters, {}) for i in range(3)]
    out = {"partitions": args.partitions, "replication_factor": 3}
    try:
        for x in nodes:
            x.start()
        wait_for("every node to list every broker",
                 lambda: all(cluster_view(x)["brokers"] == [1, 2, 3] for x in nodes), timeout=60)
        admin = AdminClient({"bootstrap.servers": ",".join(x.bootstrap for x in nodes), "log_level": 2})
        t0 = time.monotonic()
        admin.create_topics([NewTopic("many", num_partitions=args.partitions, replication_factor=3)])[
            "many"].result(120)

        def all_led():
            t = admin.list_topics("many", timeout=30).topics["many"]
            return sum(1 for p in t.partitions.values() if p.leader >= 0 and len(p.isrs) == 3) == args.partitions

        wait_for("every partition led and in sync", all_led, timeout=900, interval=1)
        out["led_in_sync_s"] = round(time.monotonic() - t0, 1)
        log(f"{args.partitions} partitions led and in sync after {out['led_in_sync_s']} s")
        # Settled: no node wrote a partition hard state for 10 s.
        deadline = time.monotonic() + args.settle
        elections = None
        while time.monotonic() < deadline:
            time.sleep(10)
            elections = [hard_states_written(x, 10) for x in nodes]
            log(f"partition hard states written in the last 10 s: {elections}")
            if not any(elections):
                break
        out["settled"] = not any(elections or [1])
        out["hard_states_last_10s"] = elections
        before = [cpu_seconds(x.proc.pid) for x in nodes]
        t1 = time.monotonic()
        time.sleep(args.window)
        dt = time.monotonic() - t1
        out["idle_cpu_pct_of_core"] = [round(100 * (cpu_seconds(x.proc.pid) - b) / dt, 1)
                                       for x, b in zip(nodes, before)]
        out["rss_mib"] = [rss_mib(x.proc.pid) for x in nodes]
        log(f"idle CPU per node {out['idle_cpu_pct_of_core']} % of a core, RSS {out['rss_mib']} MiB"
            + ("" if out["settled"] else " (NOT settled: elections still running)"))
        print(json.dumps(out), flush=True)
    finally:
        for x in nodes:
            if x.alive():
                x.proc.kill()
                x.proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
