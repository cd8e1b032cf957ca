#!/usr/bin/env python3
"""A Fjord cluster of real processes on loopback, driven by real clients.

Starts N nodes (default 3), each a voter of the metadata quorum and a
broker, and checks with confluent-kafka (librdkafka) and kcat:

  formation   every node lists every broker and the same controller and
              cluster id; a topic created through one node appears on all,
              its partitions spread over the brokers
  data        records produced through the whole cluster (acks=all,
              idempotent) are read back exactly once, in order, by a group
  failover    kill -9 of the active controller: a new one is elected, topic
              creation and produce keep working on the survivors, the dead
              broker is fenced (it leaves the brokers list and its partitions
              go leaderless); it restarts, rejoins, and its records are back
  foreign     a node holding another cluster's data refuses to join with a
              message that says so (and never takes the quorum over)

usage: cluster_test.py [--binary PATH] [--nodes N] [--keep]
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def log(*a):
    print(*a, flush=True)


def free_ports(count):
    """Ports below the ephemeral range, free now."""
    out = []
    while len(out) < count:
        p = random.randint(20000, 32000)
        if p in out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        out.append(p)
    return out


class Node:
    def __init__(self, binary, work, node_id, port, cport, voters, extra):
        self.binary = binary
        self.id = node_id
        self.port = port
        self.cport = cport
        self.voters = voters
        self.dir = os.path.join(work, f"node-{node_id}")
        self.log_path = os.path.join(work, f"node-{node_id}.log")
        self.extra = extra
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        args = [self.binary, "start", "--smp", "2", "--log-dirs", self.dir,
                "--override", f"node.id={self.id}",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}",
                "--override", "controller.listener.names=CONTROLLER",
                "--override", f"controller.quorum.voters={self.voters}"]
        for k, v in self.extra.items():
            args += ["--override", f"{k}={v}"]
        with open(self.log_path, "ab") as f:
            self.proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self):
        if not self.proc:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc = None
        return rc

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def wait_for(what, fn, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # a node not up yet, a timeout
            last = e
        time.sleep(interval)
    raise Failure(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last})" if last else ""))


def metadata(bootstrap, timeout=5):
    a = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000})
    return a.list_topics(timeout=timeout)


def cluster_view(node):
    md = metadata(node.bootstrap)
    return {"brokers": sorted(md.brokers), "controller": md.controller_id, "cluster_id": md.cluster_id,
            "topics": {n: {p: t.partitions[p].leader for p in t.partitions} for n, t in md.topics.items()}}


def produce(bootstrap, topic, n, tag):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "message.timeout.ms": 30000})
    acked = []
    errors = []

    def cb(err, msg):
        if err:
            errors.append(str(err))
        else:
            acked.append((msg.partition(), msg.offset(), msg.value().decode()))

    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=f"{tag}-{i}".encode(), on_delivery=cb)
        p.poll(0)
    left = p.flush(60)
    check(left == 0, f"{left} records not delivered")
    check(not errors, f"delivery errors: {errors[:5]}")
    return acked


def read_all(bootstrap, topic, partitions, expected, group):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < expected and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        seen.append((m.partition(), m.offset(), m.value().decode()))
    c.close()
    return seen


def same_records(acked, seen):
    by_part = {}
    for p, o, v in sorted(acked):
        by_part.setdefault(p, []).append((o, v))
    got = {}
    for p, o, v in seen:
        got.setdefault(p, []).append((o, v))
    for p in by_part:
        check(got.get(p) == by_part[p],
              f"partition {p}: read {len(got.get(p, []))} records, {len(by_part[p])} acknowledged, or out of order")
    check(sum(len(v) for v in got.values()) == len(acked), "records read that were never acknowledged")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/src/app/fjord"))
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fjord-cluster-")
    n = args.nodes
    ports = free_ports(2 * n)
    voters = ",".join(f"{i + 1}@127.0.0.1:{ports[n + i]}" for i in range(n))
    extra = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500",
             "controller.quorum.election.timeout.ms": "500", "group.initial.rebalance.delay.ms": "0"}
    nodes = [Node(args.binary, work, i + 1, ports[i], ports[n + i], voters, extra) for i in range(n)]
    bootstrap = ",".join(x.bootstrap for x in nodes)
    extras = []
    ok = False
    try:
        t0 = time.monotonic()
        for x in nodes:
            x.start()

        # ---- formation
        def formed():
            views = [cluster_view(x) for x in nodes]
            return views if all(v["brokers"] == list(range(1, n + 1)) for v in views) else None

        views = wait_for("every node to list every broker", formed, timeout=60)
        log(f"formation: {n} nodes serving in {time.monotonic() - t0:.1f} s; brokers {views[0]['brokers']}, "
            f"controller {views[0]['controller']}, cluster {views[0]['cluster_id']}")
        check(len({v["cluster_id"] for v in views}) == 1, f"cluster ids differ: {[v['cluster_id'] for v in views]}")
        for x in nodes:
            ids = [line for line in x.log_text().splitlines() if "metadata quorum: term" in line]
            check(ids, f"node {x.id} logged no quorum state")

        parts = 2 * n
        admin = AdminClient({"bootstrap.servers": nodes[-1].bootstrap})
        fs = admin.create_topics([NewTopic("orders", num_partitions=parts, replication_factor=1)])
        fs["orders"].result(30)
        leaders = wait_for("'orders' on every node", lambda: (lambda vs: vs[0]["topics"].get("orders")
                            if all(v["topics"].get("orders") == vs[0]["topics"].get("orders") and
                                   v["topics"].get("orders") for v in vs) else None)(
                            [cluster_view(x) for x in nodes]))
        check(len(set(leaders.values())) == min(n, parts), f"partitions not spread over the brokers: {leaders}")
        log(f"formation: topic created through node {nodes[-1].id}, leaders {leaders}")
        rf3 = admin.create_topics([NewTopic("rf3", num_partitions=1, replication_factor=n)])
        try:
            rf3["rf3"].result(30)
            raise Failure("replication factor > 1 was accepted without replication")
        except Failure:
            raise
        except Exception as e:
            check("INVALID_REPLICATION_FACTOR" in str(e) or "replicat" in str(e), f"rf {n}: {e}")

        # ---- data
        acked = produce(bootstrap, "orders", 600, "a")
        seen = read_all(bootstrap, "orders", parts, len(acked), "g1")
        same_records(acked, seen)
        log(f"data: {len(acked)} records acknowledged and read back exactly once, in order")

        # ---- failover: kill the active controller
        ctl = views[0]["controller"]
        victim = next(x for x in nodes if x.id == ctl)
        survivors = [x for x in nodes if x is not victim]
        victim.kill()
        t_kill = time.monotonic()
        sb = ",".join(x.bootstrap for x in survivors)

        def new_controller():
            v = [cluster_view(x) for x in survivors]
            c = {w["controller"] for w in v}
            return v if len(c) == 1 and ctl not in c and victim.id not in v[0]["brokers"] else None

        after = wait_for("a new controller and the dead broker fenced", new_controller, timeout=60)
        log(f"failover: node {ctl} killed; controller {after[0]['controller']} after "
            f"{time.monotonic() - t_kill:.1f} s; brokers {after[0]['brokers']}")
        dead = [p for p, l in after[0]["topics"]["orders"].items() if l == -1]
        check(dead == sorted(p for p, l in leaders.items() if l == victim.id),
              f"the dead broker's partitions should be leaderless: {after[0]['topics']['orders']}")
        admin2 = AdminClient({"bootstrap.servers": sb})
        admin2.create_topics([NewTopic("after", num_partitions=2, replication_factor=1)])["after"].result(30)
        acked2 = produce(sb, "after", 100, "b")
        same_records(acked2, read_all(sb, "after", 2, len(acked2), "g2"))
        log("failover: a topic created and 100 records written and read on the survivors")

        # The dead node comes back: it rejoins and its partitions lead again.
        victim.start()
        wait_for("the restarted node back in every broker list",
                 lambda: all(cluster_view(x)["brokers"] == list(range(1, n + 1)) for x in nodes), timeout=60)
        wait_for("every partition of 'orders' led again",
                 lambda: all(l >= 0 for l in cluster_view(nodes[0])["topics"]["orders"].values()), timeout=60)
        seen = read_all(bootstrap, "orders", parts, len(acked), "g3")
        same_records(acked, seen)
        log("failover: the restarted node rejoined; every record of 'orders' is back")

        # ---- shutdown: every node stops cleanly
        for x in nodes:
            rc = x.stop()
            check(rc == 0, f"node {x.id} exited with {rc} on SIGTERM")
        for x in nodes:
            bad = [line for line in x.log_text().splitlines() if "assertion failed" in line]
            check(not bad, f"node {x.id}: {bad[:3]}")

        # ---- foreign: a node with another cluster's data does not join
        lone_ports = free_ports(2)
        lone = Node(args.binary, os.path.join(work, "lone"), 1, lone_ports[0], lone_ports[1],
                    f"1@127.0.0.1:{lone_ports[1]}", {})
        extras.append(lone)
        lone.start()
        wait_for("a single-node cluster", lambda: cluster_view(lone)["brokers"] == [1])
        check(lone.stop() == 0, "the single node did not stop cleanly")
        intruder = Node(args.binary, work, 1, ports[0], ports[n], voters, extra)
        extras.append(intruder)
        shutil.rmtree(nodes[0].dir)
        shutil.copytree(lone.dir, nodes[0].dir)
        for x in nodes[1:]:
            x.start()
        intruder.start()

        def refused():
            t = intruder.log_text()
            return "refusing" in t and "this is cluster" in t

        wait_for("the foreign node's refusal in its log", refused, timeout=30)
        v = wait_for("the cluster without the foreign node",
                     lambda: (lambda w: w if w["brokers"] == list(range(2, n + 1)) else None)(cluster_view(nodes[1])))
        check(v["cluster_id"] == views[0]["cluster_id"], "the cluster id changed")
        log(f"foreign: a node holding another cluster's data was refused; the cluster kept id {v['cluster_id']}")
        intruder.stop()
        for x in nodes[1:]:
            x.stop()
        ok = True
        log("cluster_test: all checks passed")
    except Failure as e:
        log(f"cluster_test: FAILED: {e}")
    finally:
        for x in nodes + extras:
            if x.alive():
                x.proc.kill()
        if not ok:
            for x in nodes:
                if os.path.exists(x.log_path):
                    log(f"---- node {x.id} log (tail)")
                    log("\n".join(x.log_text().splitlines()[-30:]))
        if args.keep or not ok:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
