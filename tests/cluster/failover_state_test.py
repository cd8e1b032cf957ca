#!/usr/bin/env python3
"""Coordinators and producer state fail over (issue 13, item 5).

A 3-node cluster of real processes on loopback. One node, X, is made the
active controller, the leader of every partition the test cares about and
the coordinator of its consumer group; then X is killed with SIGKILL while
all of this runs, and restarted later:

  idempotence  raw Produce v9 requests (hand-written; a record batch v2
               with CRC-32C) of one producer id/epoch, acks=all, to an RF=3
               partition led by X, a seventh in flight when X is killed
               (resent to the new leader as a client resends a batch whose
               answer it lost). After the kill, the new leader is sent
               the same batches again (same producer id, epoch, base
               sequence): the last batch and the oldest of the last 5 (what
               a producer's state retains) must be answered NONE with their
               original base offsets, as Kafka 4.4 answers (its followers
               keep producer state from the batches they replicate); a
               batch with a sequence gap must get OUT_OF_ORDER_SEQUENCE_NUMBER
               and base offset -1; the next batch goes on. The
               same after X restarts and takes its leadership back. Read
               back, every record is in the log once, in sequence order.
  producer     confluent-kafka with enable.idempotence=true and acks=all
               writes 3 partitions (X leads one) before, during and after
               the kill: the fault suite's checker (harness.checker) must
               find every acknowledged record once at its offset, in order.
  group        a KIP-848 group (group.protocol=consumer) of two members
               reading those partitions, committing synchronously; its
               __consumer_offsets partition is led by X. After the kill the
               members go on with the new coordinator (which, like Kafka's,
               loads their member epochs and assignments from that
               partition), and again when X takes the partition back after
               its restart; the assignment is complete (each partition owned by exactly one member), the
               committed offsets never go backwards (sampled all along, and
               never below an acknowledged commit), nothing below an
               acknowledged commit is delivered again (the at-least-once
               window is what follows the last commit), and every
               acknowledged record reaches the group.
  ids          InitProducerId sent to every node more than a block of ids
               (1000) each before the kill, to the survivors while the
               controller is gone (they need new blocks from the new
               controller) and to every node after X restarts: no id twice.

Error codes come from ../shared/kafka-protocol/errors.tsv (Kafka's values).

Negative controls: each checker first runs on histories that are wrong on
purpose (a duplicate, a loss, a redelivery below a commit, a commit going
backwards, an incomplete or overlapping assignment, an id twice) and must
report each; and the idempotence check is run against a partition whose
leader has no state of the producer (a producer state lost in the
failover): it must fail.

Last, every node gets SIGTERM at once and must exit 0; the leader epochs
the replicated partitions gained meanwhile must stay at 3 per partition or
fewer (nodes in controlled shutdown take no leadership; before they did,
they handed it to each other up to a hundred times per partition in 3 s).

usage: failover_state_test.py [--binary PATH] [--keep]
"""

import argparse
import glob
import os
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import (ROOT, Failure, Node, Writer, check, checker, cluster_view, final_log, free_ports, log,
                     replicated_ready, wait_for)

sys.path.insert(0, os.path.join(ROOT, "tests", "broker"))
from crash_test import Conn, kstring  # noqa: E402
from idempotence_test import EXPECTED as KAFKA_SINGLE_NODE  # noqa: E402
from idempotence_test import encode_batch, read_uvarint, uvarint  # noqa: E402

STREAM_PARTITIONS = 3
ID_BLOCK = 1000  # producer ids a node takes from the controller at a time (kafka/broker.h)
# Stopping all three nodes at once: at most one handover per node.
SHUTDOWN_TERMS_MAX = 3


# ---------------------------------------------------------------------------
# Kafka's error codes, by name, from the protocol tree.
def kafka_errors():
    path = os.path.join(os.environ.get("FJORD_KAFKA_PROTOCOL", os.path.join(ROOT, "..", "shared", "kafka-protocol")),
                        "errors.tsv")
    codes = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 2 and parts[0].lstrip("-").isdigit():
                    codes[parts[1]] = int(parts[0])
    elif os.environ.get("CI") == "true":
        raise Failure(f"{path} not found (CI=true)")
    else:
        # Kafka's values, for a checkout without ../shared.
        codes = {"NONE": 0, "COORDINATOR_LOAD_IN_PROGRESS": 14, "COORDINATOR_NOT_AVAILABLE": 15,
                 "NOT_COORDINATOR": 16, "NOT_LEADER_OR_FOLLOWER": 6, "OUT_OF_ORDER_SEQUENCE_NUMBER": 45,
                 "LEADER_NOT_AVAILABLE": 5, "NOT_CONTROLLER": 41, "REQUEST_TIMED_OUT": 7}
    return codes


ERR = {}


# ---------------------------------------------------------------------------
# Wire: Produce v9 (flexible) and InitProducerId v0, written by hand.
def compact_string(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def skip_tags(r, pos):
    n, pos = read_uvarint(r, pos)
    for _ in range(n):
        _tag, pos = read_uvarint(r, pos)
        size, pos = read_uvarint(r, pos)
        pos += size
    return pos


def send_produce_v9(port, topic, partition, batch):
    """Sends one acks=all batch; returns the connection, the answer unread."""
    body = uvarint(0)  # transactional id: null
    body += struct.pack(">hi", -1, 20000)  # acks=all, timeout
    body += uvarint(2) + compact_string(topic)
    body += uvarint(2) + struct.pack(">i", partition) + uvarint(len(batch) + 1) + batch + b"\x00"
    body += b"\x00" + b"\x00"
    c = Conn(port, timeout=30)
    c.correlation += 1
    # Request header v2: client id (int16 string), tagged fields.
    header = struct.pack(">hhi", 0, 9, c.correlation) + kstring("failover-state-test") + b"\x00"
    c.sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    return c


def produce_v9(port, topic, partition, batch):
    """(error code, base offset) of one acks=all batch."""
    c = send_produce_v9(port, topic, partition, batch)
    try:
        r = c.receive(c.correlation)
    finally:
        c.close()
    pos = skip_tags(r, 0)  # response header v1
    nt, pos = read_uvarint(r, pos)
    nl, pos = read_uvarint(r, pos)
    pos += nl - 1
    np_, pos = read_uvarint(r, pos)
    check(nt == 2 and np_ == 2, f"Produce v9: {nt - 1} topics, {np_ - 1} partitions in the answer")
    _index, err, base = struct.unpack_from(">ihq", r, pos)
    return err, base


def produce_retrying(port, topic, partition, batch, deadline_s=15.0):
    """produce_v9, retried as a client retries while the node is not (yet)
    the partition's leader."""
    deadline = time.monotonic() + deadline_s
    while True:
        got = produce_v9(port, topic, partition, batch)
        if got[0] not in (ERR["NOT_LEADER_OR_FOLLOWER"], ERR["LEADER_NOT_AVAILABLE"]) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def init_producer_ids(port, count, deadline_s=30.0):
    """count ids from one node (InitProducerId v0, pipelined 50 at a time);
    retriable errors (no controller yet) are retried until the deadline."""
    ids = []
    retried = 0
    deadline = time.monotonic() + deadline_s
    c = Conn(port, timeout=15)
    try:
        while len(ids) < count:
            n = min(50, count - len(ids))
            ids_before_chunk = len(ids)
            sent = [c.send(22, 0, struct.pack(">hi", -1, 60000)) for _ in range(n)]
            for corr in sent:
                _throttle, err, pid, epoch = struct.unpack_from(">ihqh", c.receive(corr), 0)
                if err == ERR["NONE"]:
                    check(pid >= 0 and epoch == 0, f"InitProducerId: id {pid} epoch {epoch}")
                    ids.append(pid)
                elif err in (ERR["COORDINATOR_NOT_AVAILABLE"], ERR["COORDINATOR_LOAD_IN_PROGRESS"],
                             ERR["NOT_COORDINATOR"]) and time.monotonic() < deadline:
                    retried += 1
                else:
                    raise Failure(f"InitProducerId on port {port}: error {err}")
            if len(ids) < count and ids_before_chunk == len(ids):
                time.sleep(0.05)  # no controller yet
    finally:
        c.close()
    return ids, retried


# ---------------------------------------------------------------------------
# idempotence: one producer's batches, resent to another leader.
class RawProducer:
    """Batches of two records, base sequences 0, 2, 4, ...; remembers each
    batch's bytes and the offset it was acknowledged at."""

    def __init__(self, pid, epoch, topic, partition):
        self.pid, self.epoch, self.topic, self.partition = pid, epoch, topic, partition
        self.batches = []  # (base sequence, bytes, values, acknowledged base offset)

    def batch(self, seq):
        values = [f"idem-{seq + i}".encode() for i in range(2)]
        return encode_batch(values, self.pid, self.epoch, seq), values

    def send_new(self, port, retried=None):
        """The next batch, or `retried` (a batch sent before whose answer was
        lost) again."""
        seq = 2 * len(self.batches)
        b, values = retried or self.batch(seq)
        err, base = produce_retrying(port, self.topic, self.partition, b)
        check(err == ERR["NONE"], f"batch seq {seq}: error {err}")
        self.batches.append((seq, b, values, base))
        return base


def resend_checks(port, rp, what):
    """The answers of the leader on `port` to duplicates, a gap and the next
    batch: problems (empty: as Kafka 4.4 answers)."""
    problems = []
    # Duplicates: the last batch, and the oldest of the last 5 (a producer's
    # retained batches, Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN).
    for seq, b, _values, base in [rp.batches[-1], rp.batches[-5]]:
        got = produce_retrying(port, rp.topic, rp.partition, b)
        if got != (ERR["NONE"], base):
            problems.append(f"{what}: duplicate of seq {seq} answered {got}, Kafka answers "
                            f"({ERR['NONE']}, {base}) (NONE with its original base offset)")
    nxt = 2 * len(rp.batches)
    gap, _ = rp.batch(nxt + 2)
    got = produce_retrying(port, rp.topic, rp.partition, gap)
    if got != (ERR["OUT_OF_ORDER_SEQUENCE_NUMBER"], -1):
        problems.append(f"{what}: seq {nxt + 2} after {nxt - 1} answered {got}, Kafka answers "
                        f"({ERR['OUT_OF_ORDER_SEQUENCE_NUMBER']}, -1) (OUT_OF_ORDER_SEQUENCE_NUMBER)")
    before = rp.batches[-1][3]
    try:
        base = rp.send_new(port)
        if base <= before:
            problems.append(f"{what}: the next batch (seq {nxt}) at {base}, not after {before}")
    except Failure as e:
        problems.append(f"{what}: {e}")
    return problems


def log_checks(rp, records):
    """Every acknowledged record of the raw producer once, in sequence order."""
    problems = []
    values = [v for _o, v, *_ in records]
    expected = [v.decode() for _s, _b, vs, _base in rp.batches for v in vs]
    for v in expected:
        if values.count(v) != 1:
            problems.append(f"{v} is in the log {values.count(v)} times")
    seqs = [int(v.split("-")[1]) for v in values if v.startswith("idem-")]
    if seqs != sorted(seqs):
        problems.append(f"records out of sequence order: {seqs}")
    at = {v: o for o, v, *_ in records}
    for seq, _b, vs, base in rp.batches:
        if at.get(vs[0].decode()) != base:
            problems.append(f"seq {seq} acknowledged at {base}, in the log at {at.get(vs[0].decode())}")
    return problems


# ---------------------------------------------------------------------------
# group: two KIP-848 members that commit what they have processed.
class Member(threading.Thread):
    def __init__(self, bootstrap, group, topic, name, history):
        super().__init__(daemon=True)
        self.name, self.topic, self.h = name, topic, history
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                           "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "fetch.wait.max.ms": 100, "client.id": name, "reconnect.backoff.max.ms": 1000})
        self.assigned = set()
        self.next = {}  # partition -> offset after the last record delivered
        self.stopping = threading.Event()
        self.commit_errors = []

    def _commit(self, parts):
        offsets = [TopicPartition(self.topic, p, self.next[p]) for p in parts if p in self.next]
        if not offsets:
            return
        try:
            self.c.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            self.commit_errors.append(str(e))
            return
        self.h.committed(self.name, {tp.partition: tp.offset for tp in offsets})

    def _on_assign(self, c, parts):
        self.assigned |= {tp.partition for tp in parts}
        self.h.assignment(self.name, self.assigned)

    def _on_revoke(self, c, parts):
        # Commit what was processed before giving the partitions up.
        gone = {tp.partition for tp in parts}
        self._commit(sorted(gone & self.assigned))
        self._drop(gone)

    def _on_lost(self, c, parts):
        self._drop({tp.partition for tp in parts})

    def _drop(self, gone):
        self.assigned -= gone
        for p in gone:
            self.next.pop(p, None)
        self.h.assignment(self.name, self.assigned)

    def run(self):
        self.c.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        last_commit = time.monotonic()
        while not self.stopping.is_set():
            m = self.c.poll(0.05)
            if m is not None and not m.error() and m.partition() in self.assigned:
                self.h.delivered(self.name, m.partition(), m.offset())
                self.next[m.partition()] = m.offset() + 1
            if time.monotonic() - last_commit > 0.2:
                self._commit(sorted(self.assigned))
                last_commit = time.monotonic()
        self._commit(sorted(self.assigned))
        self.c.close()

    def finish(self):
        self.stopping.set()
        self.join(30)


class GroupHistory:
    """What the members saw and did, in the order it happened (one lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []  # ("delivered", member, p, o) | ("committed", member, {p: o}) | ("assignment", member, set)
        self.samples = []  # committed offsets read by an observer: {p: o}
        self.assignments = {}

    def delivered(self, member, p, o):
        with self.lock:
            self.events.append(("delivered", member, p, o))

    def committed(self, member, offsets):
        with self.lock:
            self.events.append(("committed", member, dict(offsets)))

    def assignment(self, member, parts):
        with self.lock:
            self.assignments[member] = set(parts)
            self.events.append(("assignment", member, set(parts)))

    def current(self):
        with self.lock:
            return {m: set(p) for m, p in self.assignments.items()}

    def settled(self, partitions, since=0):
        """Two members own every partition once, and each partition had a
        commit acknowledged after event `since`."""
        with self.lock:
            owners = {m: p for m, p in self.assignments.items() if p}
            committed = {p for e in self.events[since:] if e[0] == "committed" for p in e[2]}
        return (len(owners) == 2 and not assignment_problems(owners, partitions) and
                committed == set(range(partitions)))

    def max_delivered(self, p):
        with self.lock:
            return max([e[3] for e in self.events if e[0] == "delivered" and e[2] == p] or [-1])


def assignment_problems(assignments, partitions):
    """Every partition owned by exactly one member."""
    owners = {}
    for m, parts in assignments.items():
        for p in parts:
            owners.setdefault(p, []).append(m)
    problems = [f"partition {p} owned by {owners.get(p, [])}" for p in range(partitions) if len(owners.get(p, [])) != 1]
    problems += [f"unknown partition {p} assigned" for p in owners if p not in range(partitions)]
    return problems


def group_checker(events, samples, acked, partitions):
    """The problems of a group's history (empty: safe)."""
    problems = []
    commit = {}  # partition -> the highest acknowledged commit so far
    delivered = set()
    for e in events:
        if e[0] == "committed":
            for p, o in e[2].items():
                commit[p] = max(commit.get(p, 0), o)
        elif e[0] == "delivered":
            _, member, p, o = e
            if o < commit.get(p, 0):
                problems.append(f"{member} got {p}/{o} again, below the acknowledged commit {commit[p]}")
            delivered.add((p, o))
    last = {}
    for s in samples:
        for p, o in s.items():
            if o < last.get(p, 0):
                problems.append(f"the committed offset of partition {p} went back from {last[p]} to {o}")
            last[p] = max(last.get(p, 0), o)
    if samples:
        final = samples[-1]
        for p, o in commit.items():
            if final.get(p, -1) < o:
                problems.append(f"partition {p}: committed {final.get(p)} at the end, below the acknowledged {o}")
    missing = [(p, o) for p, o, _v in acked if (p, o) not in delivered]
    if missing:
        problems.append(f"{len(missing)} acknowledged records never reached the group, e.g. {sorted(missing)[:3]}")
    return problems


def committed_sample(reader, topic, partitions):
    """The group's committed offsets, read by a consumer of the group that
    never joins it: librdkafka's AdminClient (list_consumer_group_offsets)
    crashes the process when its OffsetFetch is answered NOT_COORDINATOR, as
    a coordinator that is moving answers (it asks a consumer-group handle it
    does not have to look the coordinator up again: librdkafka issue 5040,
    seen here with the bundled librdkafka 2.16)."""
    got = reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=3)
    return {tp.partition: tp.offset for tp in got if tp.offset >= 0 and not tp.error}


class Observer(threading.Thread):
    """Reads the group's committed offsets every 100 ms."""

    def __init__(self, bootstrap, group, topic, history):
        super().__init__(daemon=True)
        self.reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                                "reconnect.backoff.max.ms": 1000})
        self.topic, self.h = topic, history
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                s = committed_sample(self.reader, self.topic, STREAM_PARTITIONS)
                with self.h.lock:
                    self.h.samples.append(s)
            except Exception:  # the coordinator is moving
                pass
            time.sleep(0.1)

    def finish(self):
        self.stopping.set()
        self.join(30)
        with self.h.lock:
            self.h.samples.append(committed_sample(self.reader, self.topic, STREAM_PARTITIONS))
        self.reader.close()


def java_string_hash(s):
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def group_partition(group, partitions):
    """Kafka's: Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def ids_problems(ids):
    seen = {}
    problems = []
    for where, pid in ids:
        if pid in seen:
            problems.append(f"producer id {pid} given twice: {seen[pid]} and {where}")
        seen[pid] = where
    return problems


# ---------------------------------------------------------------------------
def self_checks():
    """Each checker on histories that are wrong on purpose: it must say so."""
    acked = [(0, 0, "w-0"), (0, 1, "w-1")]
    check(not checker(acked, [], {0: [(0, "w-0"), (1, "w-1")]}), "the producer checker rejects a safe history")
    check(checker(acked, [], {0: [(0, "w-0"), (1, "w-1"), (2, "w-1")]}), "a duplicate record not caught")
    check(checker(acked, [], {0: [(0, "w-0")]}), "a lost acknowledged record not caught")
    check(checker(acked, [], {0: [(0, "w-1"), (1, "w-0")]}), "records out of order not caught")
    ok = [("delivered", "a", 0, 0), ("delivered", "a", 0, 1), ("committed", "a", {0: 2}), ("delivered", "b", 0, 2)]
    check(not group_checker(ok, [{0: 1}, {0: 2}], acked, 1), "the group checker rejects a safe history")
    below = ok + [("delivered", "b", 0, 1)]
    check(group_checker(below, [{0: 2}], acked, 1), "a redelivery below an acknowledged commit not caught")
    check(group_checker(ok, [{0: 2}, {0: 1}], acked, 1), "a committed offset going back not caught")
    check(group_checker(ok, [{0: 1}], acked, 1), "a final commit below an acknowledged one not caught")
    check(group_checker(ok[:1], [{0: 2}], acked, 1), "an acknowledged record never delivered not caught")
    check(not assignment_problems({"a": {0, 1}, "b": {2}}, 3), "a complete assignment rejected")
    check(assignment_problems({"a": {0, 1}, "b": {1, 2}}, 3), "a partition owned twice not caught")
    check(assignment_problems({"a": {0}, "b": {2}}, 3), "an unowned partition not caught")
    check(not ids_problems([("n1", 1), ("n2", 2)]), "distinct ids rejected")
    check(ids_problems([("n1", 1), ("n2", 1)]), "an id given twice not caught")
    rp = RawProducer(1, 0, "t", 0)
    rp.batches = [(0, b"", [b"idem-0", b"idem-1"], 0), (2, b"", [b"idem-2", b"idem-3"], 2)]
    check(not log_checks(rp, [(0, "idem-0"), (1, "idem-1"), (2, "idem-2"), (3, "idem-3")]), "a clean log rejected")
    check(log_checks(rp, [(0, "idem-0"), (1, "idem-1"), (2, "idem-2"), (3, "idem-3"), (4, "idem-2")]),
          "a batch written twice not caught")
    check(log_checks(rp, [(0, "idem-0"), (1, "idem-1"), (3, "idem-2"), (4, "idem-3")]),
          "a batch at another offset than acknowledged not caught")
    # What resend_checks expects is what Kafka 4.4 answered on one node
    # (recorded in tests/broker/idempotence_test.py): a duplicate of the last
    # batch and of the oldest of the last 5 gets NONE and its original
    # offset, a gap OUT_OF_ORDER_SEQUENCE_NUMBER and base offset -1.
    check(KAFKA_SINGLE_NODE[("sequence", "dup_second")] == (ERR["NONE"], 2) and
          KAFKA_SINGLE_NODE[("sequence", "dup_oldest_retained")] == (ERR["NONE"], 6) and
          KAFKA_SINGLE_NODE[("sequence", "gap")] == (ERR["OUT_OF_ORDER_SEQUENCE_NUMBER"], -1),
          "the expectations differ from Kafka 4.4's recorded answers")
    # Java's String.hashCode: "hello" 99162322; "polygenelubricants" is Integer.MIN_VALUE.
    check(java_string_hash("hello") == 99162322 and group_partition("polygenelubricants", 7) == 0,
          "group_partition differs from Kafka's")


# ---------------------------------------------------------------------------
def run(args, work):
    ports = free_ports(6)
    voters = ",".join(f"{i + 1}@127.0.0.1:{ports[3 + i]}" for i in range(3))
    conf = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500",
            "controller.quorum.election.timeout.ms": "500",
            "leader.imbalance.check.interval.seconds": "2", "offsets.topic.num.partitions": "3",
            "group.consumer.heartbeat.interval.ms": "500", "group.initial.rebalance.delay.ms": "0"}
    nodes = [Node(args.binary, work, i + 1, ports[i], ports[3 + i], voters, conf) for i in range(3)]
    bootstrap = ",".join(x.bootstrap for x in nodes)
    threads = []
    try:
        for x in nodes:
            x.start()
        views = wait_for("every node to list every broker and one controller",
                         lambda: (lambda v: v if all(w["brokers"] == [1, 2, 3] and w["controller"] in (1, 2, 3) and
                                                     w["controller"] == v[0]["controller"] for w in v) else None)(
                             [cluster_view(x) for x in nodes]), timeout=60)
        ctl = views[0]["controller"]
        victim = nodes[ctl - 1]
        others = [x.id for x in nodes if x is not victim]
        survivors = [x for x in nodes if x is not victim]
        sb = ",".join(x.bootstrap for x in survivors)
        log(f"cluster up; controller (and the node to kill) {ctl}")

        # Three partitions, RF 3: each node is the preferred leader of one
        # (placement rotates the first replica), X of one of each topic.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        fs = admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=3,
                                           config={"min.insync.replicas": "2"}) for t in ("idem", "stream")])
        for f in fs.values():
            f.result(30)
        # The offsets topic exists once a coordinator is asked for.
        coordinator(nodes, "failover-probe")
        for t in ("idem", "stream", "__consumer_offsets"):
            replicas = wait_for(f"{t} in the metadata", lambda: cluster_view(nodes[0])["replicas"].get(t))
            preferred = {p: r[0] for p, r in replicas.items()}
            wait_for(f"{t} led by its preferred replicas {preferred}, all in sync",
                     lambda: replicated_ready(nodes, t, [1, 2, 3]) == preferred, timeout=60)
        view = cluster_view(nodes[0])
        px = next(p for p, l in view["topics"]["idem"].items() if l == ctl)
        check(ctl in view["topics"]["stream"].values(), f"node {ctl} leads no partition of stream: {view['topics']}")
        offsets_leaders = view["topics"]["__consumer_offsets"]
        group = next(g for g in (f"failover-{i}" for i in range(100))
                     if offsets_leaders[group_partition(g, len(offsets_leaders))] == ctl)
        log(f"topics led by their preferred replicas; group {group} is on __consumer_offsets/"
            f"{group_partition(group, len(offsets_leaders))}, led by {ctl}")

        # ids: more than a block from every node.
        ids = []
        for x in nodes:
            got, _ = init_producer_ids(x.port, ID_BLOCK + 100)
            ids += [(f"node {x.id} before the kill", i) for i in got]

        log(f"ids: {len(ids)} from the 3 nodes")
        # producer and group: writing and consuming all along.
        # librdkafka waits up to reconnect.backoff.max.ms (10 s) before it
        # reconnects to a restarted node: 1 s keeps the test short.
        writer = Writer(bootstrap, "stream", "w", pause_s=0.1, conf={"reconnect.backoff.max.ms": 1000})
        hist = GroupHistory()
        members = [Member(bootstrap, group, "stream", f"m{i}", hist) for i in range(2)]
        observer = Observer(bootstrap, group, "stream", hist)
        threads = [writer, observer] + members
        for t in threads:
            t.start()

        # idempotence: six batches to X.
        rp = RawProducer(*init_producer_ids_one(victim.port), "idem", px)
        ids.append(("the raw producer", rp.pid))
        for _ in range(6):
            rp.send_new(victim.port)
        log(f"idempotence: producer {rp.pid} wrote 6 batches to idem/{px} on node {ctl}, at "
            f"{[x[3] for x in rp.batches]}")

        wait_for("both members assigned, the assignment complete, commits on every partition",
                 lambda: hist.settled(STREAM_PARTITIONS), timeout=30)
        wait_for(f"node {ctl} coordinating {group}, leading idem/{px} and a stream partition",
                 lambda: coordinator(nodes, group) == ctl and cluster_view(victim)["topics"]["idem"][px] == ctl and
                 ctl in cluster_view(victim)["topics"]["stream"].values(), timeout=20)
        log(f"group: 2 members, assignment {hist.current()}, coordinator {ctl}")
        acked_before = len(writer.acked)

        # ---- the kill, a seventh batch in flight: its answer is never read.
        in_flight = rp.batch(2 * len(rp.batches))
        unanswered = send_produce_v9(victim.port, rp.topic, rp.partition, in_flight[0])
        with hist.lock:
            mark = len(hist.events)
        victim.kill()
        unanswered.close()
        t_kill = time.monotonic()
        log(f"node {ctl} killed (controller, leader of idem/{px} and of a stream partition, coordinator of {group})")
        for x in survivors:
            got, retried = init_producer_ids(x.port, ID_BLOCK + 100)
            ids += [(f"node {x.id} after the kill", i) for i in got]
            log(f"ids: {len(got)} from node {x.id} without the old controller ({retried} retried answers)")

        def idem_moved():
            v = cluster_view(survivors[0])["topics"]["idem"][px]
            return v if v not in (-1, ctl) else None

        new_leader = nodes[wait_for(f"a new leader of idem/{px}", idem_moved, timeout=30) - 1]
        # Retried as a client retries a batch whose answer it lost: written
        # once, whether or not the old leader had replicated it.
        at = rp.send_new(new_leader.port, retried=in_flight)
        log(f"idempotence: the batch in flight at the kill, resent to node {new_leader.id}, is at {at}")
        problems = resend_checks(new_leader.port, rp, f"new leader {new_leader.id}")
        check(not problems, "idempotence after the failover:\n  " + "\n  ".join(problems))
        log(f"idempotence: node {new_leader.id} leads idem/{px} after {time.monotonic() - t_kill:.1f} s; duplicates "
            f"answered with their original offsets, the gap with OUT_OF_ORDER_SEQUENCE_NUMBER")

        wait_for("the members on a new coordinator, the assignment complete, commits after the kill",
                 lambda: coordinator(survivors, group) in others and hist.settled(STREAM_PARTITIONS, mark), timeout=40)
        log(f"group: carries on with coordinator {coordinator(survivors, group)} after "
            f"{time.monotonic() - t_kill:.1f} s, assignment {hist.current()}, commits on every partition")

        # ---- the restart: X catches up and takes its leaderships back.
        victim.start()
        for t in ("idem", "stream", "__consumer_offsets"):
            preferred = {p: r[0] for p, r in cluster_view(survivors[0])["replicas"][t].items()}
            wait_for(f"{t} led by its preferred replicas again", lambda: replicated_ready(nodes, t, [1, 2, 3]) ==
                     preferred, timeout=60)
        wait_for(f"node {ctl} coordinating {group} again", lambda: coordinator(nodes, group) == ctl, timeout=30)
        with hist.lock:
            mark_restart = len(hist.events)
        wait_for(f"the assignment complete and commits on every partition with node {ctl} coordinating",
                 lambda: hist.settled(STREAM_PARTITIONS, mark_restart), timeout=30)
        problems = resend_checks(victim.port, rp, f"restarted node {ctl}")
        check(not problems, "idempotence after the restart:\n  " + "\n  ".join(problems))
        for x in nodes:
            got, _ = init_producer_ids(x.port, ID_BLOCK + 100)
            ids += [(f"node {x.id} after the restart", i) for i in got]
        log(f"restart: node {ctl} leads again and coordinates {group} again, duplicates recognised there too; "
            f"{time.monotonic() - t_kill:.1f} s after the kill")

        # ---- the checks
        writer.finish()
        acked = writer.acked
        check(not writer.failed, f"the writer failed records: {writer.failed[:3]}")
        final, ends = final_log(bootstrap, "stream", STREAM_PARTITIONS)
        problems = checker(acked, [], final)
        check(not problems, "idempotent producer:\n  " + "\n  ".join(problems[:20]))
        check(len(acked) - acked_before > 50, f"only {len(acked) - acked_before} records acknowledged after the kill")
        log(f"producer: {len(acked)} records acknowledged ({len(acked) - acked_before} after the kill), "
            f"each once at its offset, in order")

        last_acked = {p: max([o for q, o, _ in acked if q == p] or [-1]) for p in range(STREAM_PARTITIONS)}
        wait_for("the group to reach the end of every partition",
                 lambda: all(hist.max_delivered(p) >= last_acked[p] for p in range(STREAM_PARTITIONS)), timeout=30)
        final_assignment = hist.current()
        with hist.lock:
            moves = len([e for e in hist.events[mark:] if e[0] == "assignment"])
        time.sleep(0.5)  # a last commit and sample
        for m in members:
            m.finish()
        observer.finish()
        problems = assignment_problems(final_assignment, STREAM_PARTITIONS)
        problems += group_checker(hist.events, hist.samples, acked, STREAM_PARTITIONS)
        check(not problems, "group:\n  " + "\n  ".join(problems[:20]))
        delivered = [e for e in hist.events if e[0] == "delivered"]
        again = len(delivered) - len({(e[2], e[3]) for e in delivered})
        commits = len([e for e in hist.events if e[0] == "committed"])
        failed = sum(len(m.commit_errors) for m in members)
        log(f"group: {len(delivered)} deliveries ({again} again, each after the last commit), {commits} commits "
            f"({failed} failed), "
            f"{len(hist.samples)} samples of the committed offsets, never going back; {moves} assignment changes "
            f"after the kill")

        problems = log_checks(rp, final_log(bootstrap, "idem", 3)[0][px])
        check(not problems, "idempotence, the log:\n  " + "\n  ".join(problems))
        problems = ids_problems(ids)
        check(not problems, "producer ids:\n  " + "\n  ".join(problems[:10]))
        blocks = {}
        for where, i in ids:
            blocks.setdefault(where.split(" ", 2)[-1], set()).add(i // ID_BLOCK)
        log(f"idempotence: {2 * len(rp.batches)} records in idem/{px}, each once, in order; "
            f"ids: {len(ids)} producer ids from 3 nodes across the kill and restart, none twice (blocks "
            f"{ {k: sorted(v) for k, v in blocks.items()} })")

        # ---- negative control: a leader without the producer's state (as if
        # the failover lost it) must fail the idempotence check.
        q = (px + 1) % 3
        lost = RawProducer(rp.pid, rp.epoch, "idem", q)
        lost.batches = list(rp.batches)
        leader = nodes[cluster_view(nodes[0])["topics"]["idem"][q] - 1]
        problems = resend_checks(leader.port, lost, "control")
        check(problems, "the idempotence check passed on a partition that never saw the producer")
        log(f"negative control: a leader with no state of the producer fails the check ({problems[0]})")

        # ---- every node stopped at once (SIGTERM): each exits 0.
        before = leader_epochs(nodes)
        t_stop = time.monotonic()
        for x in nodes:
            x.proc.send_signal(signal.SIGTERM)
        for x in nodes:
            rc = x.proc.wait(timeout=60)
            x.proc = None
            check(rc == 0, f"node {x.id} exited with {rc} on SIGTERM")
        after = leader_epochs(nodes)
        extra = {k: after[k] - before.get(k, 0) for k in after}
        worst = max(extra, key=extra.get)
        log(f"shutdown: the 3 nodes stopped in {time.monotonic() - t_stop:.1f} s; up to {extra[worst]} new leader "
            f"epochs per partition meanwhile ({worst[0]}-{worst[1]}: {before.get(worst, 0)} -> {after[worst]})")
        check(extra[worst] <= SHUTDOWN_TERMS_MAX,
              f"stopping every node at once took {extra[worst]} leader elections on {worst[0]}-{worst[1]}: "
              f"nodes in controlled shutdown hand leadership to each other")
        for x in nodes:
            bad = [line for line in x.log_text().splitlines() if "assertion failed" in line]
            check(not bad, f"node {x.id}: {bad[:3]}")
    finally:
        for t in threads:
            if hasattr(t, "stopping"):
                t.stopping.set()
        for x in nodes:
            if x.alive():
                x.proc.kill()
                x.proc.wait()


def leader_epochs(nodes):
    """(topic, partition) -> the highest leader epoch of a control batch in
    any node's log of a replicated partition (a new leader writes one)."""
    out = {}
    for x in nodes:
        for d in glob.glob(os.path.join(x.dir, "*-[0-9]*")):
            topic, _, part = os.path.basename(d).rpartition("-")
            if topic not in ("idem", "stream", "__consumer_offsets"):
                continue
            for seg in sorted(glob.glob(os.path.join(d, "*.log"))):
                with open(seg, "rb") as f:
                    b = f.read()
                pos = 0
                while pos + 23 <= len(b):
                    _base, length, epoch, _magic, _crc, attributes = struct.unpack_from(">qiibIh", b, pos)
                    if length <= 0 or pos + 12 + length > len(b):
                        break
                    if attributes & 0x20:  # control batch
                        key = (topic, int(part))
                        out[key] = max(out.get(key, 0), epoch)
                    pos += 12 + length
    return out


def init_producer_ids_one(port):
    ids, _ = init_producer_ids(port, 1)
    return ids[0], 0


def coordinator(nodes, group):
    """The group's coordinator as the first live node answers FindCoordinator
    (v1, by hand: librdkafka's AdminClient is kept out of the coordinator's
    moves, see committed_sample)."""
    for x in nodes:
        if not x.alive():
            continue
        try:
            c = Conn(x.port, timeout=5)
            try:
                r = c.call(10, 1, kstring(group) + b"\x00")
            finally:
                c.close()
        except OSError:
            continue
        _throttle, err, ml = struct.unpack_from(">ihh", r, 0)
        if err == ERR["NONE"]:
            (node_id,) = struct.unpack_from(">i", r, 8 + max(ml, 0))
            return node_id
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/src/app/fjord"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fjord-failover-")
    ok = False
    t0 = time.monotonic()
    try:
        ERR.update(kafka_errors())
        self_checks()
        log("self-check: every checker catches the wrong histories it is given")
        run(args, work)
        ok = True
        log(f"failover_state_test: all checks passed in {time.monotonic() - t0:.1f} s")
    except Failure as e:
        log(f"failover_state_test: FAILED: {e}")
        for i in (1, 2, 3):
            path = os.path.join(work, f"node-{i}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    log(f"---- node {i} log (tail)\n" + "".join(f.readlines()[-25:]))
    finally:
        if args.keep or not ok:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
