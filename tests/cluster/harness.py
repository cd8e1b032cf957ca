"""What the cluster tests share: nodes as real processes (on loopback, or
each in a network namespace of its own), the cluster's view through a real
client (confluent-kafka, librdkafka), the producing and reading of records,
and the checker that judges a history of faults."""

import logging
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

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
    """One fjord process. With netns, it runs in that network namespace
    (`ip netns exec` execs it: the process is the broker itself) and listens
    on host there."""

    def __init__(self, binary, work, node_id, port, cport, voters, extra, host="127.0.0.1", netns=None):
        self.binary = binary
        self.id = node_id
        self.port = port
        self.cport = cport
        self.voters = voters
        self.host = host
        self.netns = netns
        self.dir = os.path.join(work, f"node-{node_id}")
        self.log_path = os.path.join(work, f"node-{node_id}.log")
        self.extra = extra
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        args = ["ip", "netns", "exec", self.netns] if self.netns else []
        args += [self.binary, "start", "--smp", "2", "--log-dirs", self.dir,
                "--override", f"node.id={self.id}",
                "--override", f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.cport}",
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
        return f"{self.host}:{self.port}"


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


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def leader_epochs(node, topic):
    """{partition: (leader, leader epoch)} in node's Metadata answer. The
    Python client shows no leader epoch: librdkafka's metadata debug lines do."""
    logger = logging.getLogger(f"fjord-metadata-{id(node)}-{time.monotonic()}")
    lines = _Lines()
    logger.addHandler(lines)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    a = AdminClient({"bootstrap.servers": node.bootstrap, "debug": "metadata", "logger": logger})
    a.list_topics(topic, timeout=5)
    a.poll(0)
    out = {}
    for line in lines.lines:
        m = re.search(rf"Topic {re.escape(topic)} \[(\d+)\] Leader (-?\d+) Epoch (-?\d+)", line)
        if m:
            out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return out


def elected(node, topic, leaders):
    """Every leader in leaders was elected and reported its term: a topic's
    first metadata names each partition's preferred replica in epoch 0,
    before any election (a victim chosen then may lead nothing)."""
    epochs = leader_epochs(node, topic)
    return all(epochs.get(p, (None, 0))[0] == l and epochs[p][1] >= 1 for p, l in leaders.items())


def replicated_ready(nodes, topic, replicas):
    """Every node names the same elected live leader for every partition,
    all replicas in sync."""
    views = [cluster_view(x) for x in nodes]
    first = views[0]["topics"].get(topic)
    if not first:
        return None
    for v in views:
        if v["topics"].get(topic) != first or any(l < 0 for l in first.values()):
            return None
        if any(isr != replicas for isr in v["isr"][topic].values()):
            return None
    return first if elected(nodes[0], topic, first) else None


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


def in_sync(nodes, topic):
    """Every node names the same elected live leader for every partition of
    topic, and every partition's replicas are all in sync (any replication
    factor)."""
    views = [cluster_view(x) for x in nodes]
    first = views[0]["topics"].get(topic)
    if not first or any(l < 0 for l in first.values()):
        return None
    for v in views:
        if v["topics"].get(topic) != first:
            return None
        if any(v["isr"][topic][p] != sorted(v["replicas"][topic][p]) for p in first):
            return None
    return first if elected(nodes[0], topic, first) else None


# ---- a cluster under faults: writers, a reader, the final log, the checker

FAULT_CONF = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500",
              "controller.quorum.election.timeout.ms": "500", "replica.lag.time.max.ms": "3000"}


class Cluster:
    """n nodes, every one a metadata quorum voter and a broker. Without
    hosts, on loopback with free ports; with hosts (one address per node)
    and netns (one namespace name per node), each node in its namespace on
    ports 9092 (clients) and 9093 (controller)."""

    def __init__(self, binary, work, extra=None, n=3, hosts=None, netns=None):
        conf = dict(FAULT_CONF)
        conf.update(extra or {})
        if hosts:
            ports = [9092] * n + [9093] * n
        else:
            hosts = ["127.0.0.1"] * n
            ports = free_ports(2 * n)
        netns = netns or [None] * n
        voters = ",".join(f"{i + 1}@{hosts[i]}:{ports[n + i]}" for i in range(n))
        self.nodes = [Node(binary, work, i + 1, ports[i], ports[n + i], voters, conf, hosts[i], netns[i])
                      for i in range(n)]
        self.bootstrap = ",".join(x.bootstrap for x in self.nodes)

    def start(self, topic, partitions=3, replication_factor=None):
        ids = [x.id for x in self.nodes]
        for x in self.nodes:
            x.start()
        wait_for("every node to list every broker",
                 lambda: all(cluster_view(x)["brokers"] == ids for x in self.nodes), timeout=60)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                      replication_factor=replication_factor or len(self.nodes),
                                      config={"min.insync.replicas": "2"})])[topic].result(30)
        return wait_for("every partition led, all replicas in sync", lambda: in_sync(self.nodes, topic), timeout=60)

    def node(self, node_id):
        return next(x for x in self.nodes if x.id == node_id)

    def live(self):
        return [x for x in self.nodes if x.alive()]

    def view(self, asked=None):
        """The first answer to Metadata from the live nodes (of asked)."""
        for x in self.live() if asked is None else asked:
            if not x.alive():
                continue
            try:
                return cluster_view(x)
            except Exception:  # that node is paused, down or cut off: ask another
                continue
        raise Failure("no node answers Metadata")

    def leaders(self, topic, paused=(), asked=None):
        return self.view([x for x in (self.live() if asked is None else asked) if x not in paused])["topics"][topic]

    def stop(self):
        for x in self.nodes:
            if x.alive():
                try:
                    x.proc.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
                x.proc.kill()
                x.proc.wait()


class Writer(threading.Thread):
    """One idempotent acks=all producer, records tagged with its name and a
    sequence; remembers when each record was handed to the client (sent_at)
    and which were acknowledged (partition, offset, value) or failed.
    make_producer, when given, builds the Producer from its config (in
    another network namespace, say); conf adds client settings."""

    def __init__(self, bootstrap, topic, name, timeout_ms=20000, make_producer=None, per_round=20, pause_s=0.01,
                 conf=None):
        super().__init__(daemon=True)
        self.per_round = per_round  # records handed over every pause_s
        self.pause_s = pause_s
        settings = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                    "linger.ms": 2, "message.timeout.ms": timeout_ms, "retry.backoff.ms": 50, **(conf or {})}
        self.p = (make_producer or Producer)(settings)
        self.topic, self.name = topic, name
        self.acked, self.failed = [], []
        self.sent = 0
        self.sent_at = {}
        self.acked_at = {}  # value: when its acknowledgement came
        self.fatal = None  # the client's fatal error (an idempotence violation, say): it stops writing
        self.stopping = threading.Event()

    def _cb(self, err, msg):
        if err:
            self.failed.append(str(err))
        else:
            self.acked.append((msg.partition(), msg.offset(), msg.value().decode()))
            self.acked_at[self.acked[-1][2]] = time.monotonic()

    def write(self, count, partition=None):
        for _ in range(count):
            if self.fatal:
                return
            value = f"{self.name}-{self.sent}"
            self.sent += 1
            self.sent_at[value] = time.monotonic()
            while True:
                try:
                    if partition is None:
                        self.p.produce(self.topic, key=value.encode(), value=value.encode(), on_delivery=self._cb)
                    else:
                        self.p.produce(self.topic, partition=partition, value=value.encode(), on_delivery=self._cb)
                    break
                except BufferError:  # the client's queue is full: let it drain
                    if not self._poll(0.05):
                        return
                except KafkaException as e:
                    self.fatal = str(e)
                    return
            if not self._poll(0):
                return

    def _poll(self, timeout):
        """Serves delivery callbacks; False once the client failed for good
        (its fatal error comes as a KafkaException, or as a SystemError out
        of a callback that it interrupted)."""
        try:
            self.p.poll(timeout)
            return True
        except (KafkaException, SystemError) as e:
            self.fatal = self.fatal or str(e)
            return False

    def run(self):
        while not self.stopping.is_set() and not self.fatal:
            self.write(self.per_round)
            time.sleep(self.pause_s)
        try:
            self.p.flush(60)
        except (KafkaException, SystemError) as e:
            self.fatal = self.fatal or str(e)

    def finish(self):
        if self.ident is None:  # written to by hand, never started
            check(self.p.flush(60) == 0, f"writer {self.name} did not finish")
            return
        self.stopping.set()
        self.join(90)
        check(not self.is_alive(), f"writer {self.name} did not finish")


class Reader(threading.Thread):
    """Reads every partition from offset 0 while the faults happen."""

    def __init__(self, bootstrap, topic, partitions=3):
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-reader",
                           "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        self.c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.seen = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            m = self.c.poll(0.1)
            if m is not None and not m.error():
                self.seen.append((m.partition(), m.offset(), m.value().decode()))
        self.c.close()

    def finish(self):
        self.stopping.set()
        self.join(30)


def final_log(bootstrap, topic, partitions=3):
    """Every record of every partition, to the end (the high watermark):
    {partition: [(offset, value, leader epoch)]}, and the log ends."""
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
        got[m.partition()].append((m.offset(), m.value().decode(), m.leader_epoch()))
    check(done(), f"the final read did not reach the log ends {ends}")
    c.close()
    return got, ends


def checker(acked, seen, log_by_partition):
    """The problems found (empty: the history is safe). acked and seen are
    (partition, offset, value) lists, seen in the order a reader got them;
    log_by_partition is final_log's."""
    problems = []
    at = {}
    for p, records in log_by_partition.items():
        for o, v, *_ in records:
            if v in at:
                problems.append(f"{v} twice: {at[v]} and {(p, o)}")
            at[v] = (p, o)
    for p, o, v in acked:
        if at.get(v) != (p, o):
            problems.append(f"acknowledged {v} at {p}/{o} is {'at ' + str(at[v]) if v in at else 'lost'}")
    for p, o, v in seen:
        if at.get(v) != (p, o):
            problems.append(f"read {v} at {p}/{o}, later {'at ' + str(at[v]) if v in at else 'gone'}")
    # A reader's offsets only go forward, per partition.
    last_read = {}
    for p, o, v in seen:
        if p in last_read and o <= last_read[p]:
            problems.append(f"partition {p}: the reader got offset {o} ({v}) after offset {last_read[p]}")
        last_read[p] = o
    for p, records in log_by_partition.items():
        last = {}
        last_epoch = None
        for o, v, *rest in records:
            # Each writer's records in the order it sent them, per partition.
            name, _, seq = v.rpartition("-")
            if name in last and int(seq) < last[name]:
                problems.append(f"partition {p}: {v} after {name}-{last[name]}")
            last[name] = int(seq)
            # Leader epochs never go backwards along a log: one leader per
            # epoch, and each new one's records after the last one's.
            epoch = rest[0] if rest else None
            if epoch is not None and last_epoch is not None and epoch < last_epoch:
                problems.append(f"partition {p}: {v} at {o} in leader epoch {epoch} after epoch {last_epoch}")
            if epoch is not None:
                last_epoch = epoch
    return problems


def run_test(name, run):
    """A cluster test's main: --binary and --keep, a work directory, run(args,
    work); on a Failure the node logs' tails and the kept directory. Exits 0
    when run returned, 1 when it failed."""
    import argparse
    import shutil
    import sys
    import tempfile
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/src/app/fjord"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix=f"fjord-{name}-")
    ok = False
    try:
        run(args, work)
        ok = True
    except Failure as e:
        log(f"{name}: FAILED: {e}")
        for file in sorted(os.listdir(work)):
            if file.endswith(".log"):
                with open(os.path.join(work, file), errors="replace") as f:
                    log(f"---- {file} (tail)")
                    log("".join(f.readlines()[-25:]))
    finally:
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work directory kept: {work}")
    sys.exit(0 if ok else 1)
