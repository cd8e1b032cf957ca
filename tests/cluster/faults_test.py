#!/usr/bin/env python3
"""Faults on a cluster of real processes, judged by a checker.

A 3-node cluster on loopback, a topic with replication factor 3 and
min.insync.replicas=2. Writers (idempotent, acks=all) and a reader (from
offset 0 on every partition) run through every scenario; after the faults
heal, the checker reads every partition to its end and requires:

  - every acknowledged record present exactly once, at the offset its
    acknowledgement named, and each writer's records in the order it sent
    them (per partition);
  - no record anywhere twice (a retried batch is deduplicated);
  - everything the reader saw during the faults still there, at the same
    offset (no consumer ever saw a record that later disappeared).

Scenarios:
  pause     SIGSTOP of a partition leader for longer than the election
            timeout, then SIGCONT: a new leader takes over; the paused one
            must acknowledge nothing it cannot keep.
  kill      kill -9 of a partition leader under load, then a restart
            (--kills N repeats it; `make faults` runs the long mode).
  negative  the checker's negative control: a cluster started with
            fjord.testing.raft.broken=ack_before_majority (acknowledges an
            acks=all batch with one replica fewer than a majority). Both
            followers of a partition are paused, records are acknowledged
            by the leader alone, the leader is killed and the followers
            are killed too (what the leader sent them is still unread in
            their sockets) and restart: the checker MUST report the loss. The same steps on the
            correct cluster acknowledge nothing and lose nothing.

usage: faults_test.py [--binary PATH] [--kills N] [--keep]
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

from harness import (ROOT, Cluster, Failure, Reader, Writer, check, checker, final_log, log, replicated_ready,
                     wait_for)

PARTITIONS = 3


def run_scenarios(args, work):
    cl = Cluster(args.binary, os.path.join(work, "safe"))
    topic = "checked"
    try:
        leaders = cl.start(topic)
        log(f"faults: cluster up, leaders {leaders}")
        writers = [Writer(cl.bootstrap, topic, f"w{i}") for i in range(2)]
        reader = Reader(cl.bootstrap, topic)
        for t in writers + [reader]:
            t.start()
        time.sleep(1)

        # pause: the leader of partition 0 stops past the election timeout.
        victim = cl.node(cl.leaders(topic)[0])
        t0 = time.monotonic()
        victim.proc.send_signal(signal.SIGSTOP)
        moved = wait_for("a new leader for partition 0",
                         lambda: (lambda l: l if l[0] not in (-1, victim.id) else None)(cl.leaders(topic, [victim])),
                         timeout=30)
        log(f"pause: node {victim.id} stopped; partition 0 led by {moved[0]} after {time.monotonic() - t0:.1f} s")
        time.sleep(1)
        victim.proc.send_signal(signal.SIGCONT)
        wait_for("all replicas in sync again", lambda: replicated_ready(cl.nodes, topic, [1, 2, 3]), timeout=60)
        log("pause: node resumed and caught up")

        # kill: the leader of partition 1, then a restart, `kills` times.
        for k in range(args.kills):
            victim = cl.node(cl.leaders(topic)[1 % PARTITIONS])
            t0 = time.monotonic()
            victim.kill()
            moved = wait_for("a new leader", lambda: (lambda l: l if l[1] not in (-1, victim.id) else None)(
                cl.leaders(topic)), timeout=30)
            took = time.monotonic() - t0
            victim.start()
            wait_for("all replicas in sync again", lambda: replicated_ready(cl.nodes, topic, [1, 2, 3]), timeout=90)
            log(f"kill {k + 1}/{args.kills}: node {victim.id} killed; partition 1 led by {moved[1]} after "
                f"{took:.1f} s; restarted and caught up")

        time.sleep(1)
        for w in writers:
            w.finish()
        reader.finish()
        acked = [a for w in writers for a in w.acked]
        failed = sum(len(w.failed) for w in writers)
        final, ends = final_log(cl.bootstrap, topic, PARTITIONS)
        problems = checker(acked, reader.seen, final)
        log(f"checker: {len(acked)} acknowledged ({failed} failed), {len(reader.seen)} read during the faults, "
            f"log ends {ends}: {len(problems)} problems")
        check(not problems, "unsafe history:\n  " + "\n  ".join(problems[:20]))
        check(len(acked) > 500, f"only {len(acked)} records acknowledged: the scenarios tested too little")

        # The negative control's steps on the correct cluster: nothing is
        # acknowledged by a leader alone, so nothing is lost.
        lost = isolated_leader(cl, topic, expect_acks=False)
        check(not lost, f"the correct cluster lost acknowledged records: {lost[:5]}")
        log("negative control steps on the correct cluster: no record acknowledged by the lone leader, none lost")
    finally:
        cl.stop()


def isolated_leader(cl, topic, expect_acks):
    """Pauses partition 2's followers, writes to its leader, kills all three,
    restarts them: returns the checker's problems."""
    leaders = wait_for("partition 2 led", lambda: (lambda l: l if l[2] >= 0 else None)(cl.leaders(topic)), timeout=30)
    leader = cl.node(leaders[2])
    followers = [x for x in cl.nodes if x is not leader]
    w = Writer(cl.bootstrap, topic, "iso", timeout_ms=3000)
    w.write(1, partition=2)  # a fresh connection to the leader first
    w.p.flush(10)
    before = list(w.acked)
    for f in followers:
        f.proc.send_signal(signal.SIGSTOP)
    w.write(20, partition=2)
    w.p.flush(5)
    acked_alone = [a for a in w.acked if a not in before]
    # The leader dies, and so do the paused followers: what the leader sent
    # them still sits unread in their sockets and goes with them (a network
    # cut would lose it the same way). They restart from their disks.
    leader.kill()
    for f in followers:
        f.kill()
        f.start()
    wait_for("a new leader for partition 2",
             lambda: (lambda l: l if l[2] not in (-1, leader.id) else None)(cl.leaders(topic)), timeout=60)
    leader.start()
    wait_for("all replicas in sync again", lambda: replicated_ready(cl.nodes, topic, [1, 2, 3]), timeout=90)
    if expect_acks:
        check(acked_alone, "the broken leader acknowledged nothing alone: the control tests nothing")
    else:
        check(not acked_alone, f"the lone leader acknowledged {len(acked_alone)} records with acks=all")
    final, _ = final_log(cl.bootstrap, topic, PARTITIONS)
    return checker(w.acked, [], final)


def run_negative_control(args, work):
    cl = Cluster(args.binary, os.path.join(work, "broken"), {"fjord.testing.raft.broken": "ack_before_majority"})
    try:
        cl.start("control")
        problems = isolated_leader(cl, "control", expect_acks=True)
        check(problems, "the checker did not catch records acknowledged before a majority had them")
        log(f"negative control: ack_before_majority caught by the checker ({len(problems)} problems, "
            f"e.g. {problems[0]})")
    finally:
        cl.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/src/app/fjord"))
    ap.add_argument("--kills", type=int, default=1, help="leader kills (the long mode runs hundreds)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fjord-faults-")
    ok = False
    try:
        run_scenarios(args, work)
        run_negative_control(args, work)
        ok = True
        log("faults_test: all checks passed")
    except Failure as e:
        log(f"faults_test: FAILED: {e}")
        for sub in ("safe", "broken"):
            for i in (1, 2, 3):
                path = os.path.join(work, sub, f"node-{i}.log")
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        log(f"---- {sub} node {i} log (tail)\n" + "".join(f.readlines()[-20:]))
    finally:
        if args.keep or not ok:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
