"""What the cluster tests share: nodes as real processes on loopback, the
cluster's view through a real client (confluent-kafka, librdkafka), and the
producing, reading and checking of records."""

import os
import random
import signal
import socket
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


_T0 = time.monotonic()


def log(*a):
    """A line with the seconds since the test started."""
    print(f"[{time.monotonic() - _T0:6.1f}s]", *a, flush=True)


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
            "topics": {n: {p: t.partitions[p].leader for p in t.partitions} for n, t in md.topics.items()},
            "isr": {n: {p: sorted(t.partitions[p].isrs) for p in t.partitions} for n, t in md.topics.items()},
            "replicas": {n: {p: list(t.partitions[p].replicas) for p in t.partitions} for n, t in md.topics.items()}}


def replicated_ready(nodes, topic, replicas):
    """Every node names a live leader for every partition, all replicas in sync."""
    views = [cluster_view(x) for x in nodes]
    first = views[0]["topics"].get(topic)
    if not first:
        return None
    for v in views:
        if v["topics"].get(topic) != first or any(l < 0 for l in first.values()):
            return None
        if any(isr != replicas for isr in v["isr"][topic].values()):
            return None
    return first


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


# ---- The fault suite's writer and checker (faults_test.py, failover_state_test.py)

class Writer(threading.Thread):
    """One idempotent acks=all producer, records tagged with its name and a sequence."""

    def __init__(self, bootstrap, topic, name, timeout_ms=20000, pause_s=0.01, conf=None):
        super().__init__(daemon=True)
        self.pause_s = pause_s
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 2, "message.timeout.ms": timeout_ms, "retry.backoff.ms": 50, **(conf or {})})
        self.topic, self.name = topic, name
        self.acked, self.failed = [], []
        self.sent = 0
        self.stopping = threading.Event()

    def _cb(self, err, msg):
        if err:
            self.failed.append(str(err))
        else:
            self.acked.append((msg.partition(), msg.offset(), msg.value().decode()))

    def write(self, count, partition=None):
        for _ in range(count):
            value = f"{self.name}-{self.sent}"
            self.sent += 1
            while True:
                try:
                    if partition is None:
                        self.p.produce(self.topic, key=value.encode(), value=value.encode(), on_delivery=self._cb)
                    else:
                        self.p.produce(self.topic, partition=partition, value=value.encode(), on_delivery=self._cb)
                    break
                except BufferError:
                    self.p.poll(0.05)
            self.p.poll(0)

    def run(self):
        while not self.stopping.is_set():
            self.write(20)
            time.sleep(self.pause_s)
        self.p.flush(60)

    def finish(self):
        self.stopping.set()
        self.join(90)
        check(not self.is_alive(), f"writer {self.name} did not finish")


def final_log(bootstrap, topic, partitions):
    """Every record of every partition, to the end (the high watermark)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-final", "enable.auto.commit": False})
    ends = {}
    for p in range(partitions):
        lo, hi = wait_for(f"the offsets of partition {p}",
                          lambda: c.get_watermark_offsets(TopicPartition(topic, p), timeout=5), timeout=60)
        ends[p] = hi
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + 90

    def done():
        # The consumer's position, not the last record: a log may end with a
        # control batch (a new leader's LEADER_CHANGE), which it skips.
        pos = c.position([TopicPartition(topic, p) for p in range(partitions)])
        return all(tp.offset >= ends[tp.partition] for tp in pos)

    while not done() and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        got[m.partition()].append((m.offset(), m.value().decode()))
    check(done(), f"the final read did not reach the log ends {ends}")
    c.close()
    return got, ends


def checker(acked, seen, log_by_partition):
    """The problems found (empty: the history is safe)."""
    problems = []
    at = {}
    for p, records in log_by_partition.items():
        for o, v in records:
            if v in at:
                problems.append(f"{v} twice: {at[v]} and {(p, o)}")
            at[v] = (p, o)
    for p, o, v in acked:
        if at.get(v) != (p, o):
            problems.append(f"acknowledged {v} at {p}/{o} is {'at ' + str(at[v]) if v in at else 'lost'}")
    for p, o, v in seen:
        if at.get(v) != (p, o):
            problems.append(f"read {v} at {p}/{o}, later {'at ' + str(at[v]) if v in at else 'gone'}")
    # Each writer's records in the order it sent them, per partition.
    for p, records in log_by_partition.items():
        last = {}
        for o, v in records:
            name, _, seq = v.rpartition("-")
            if name in last and int(seq) < last[name]:
                problems.append(f"partition {p}: {v} after {name}-{last[name]}")
            last[name] = int(seq)
    return problems
