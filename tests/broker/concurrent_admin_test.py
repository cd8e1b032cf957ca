#!/usr/bin/env python3
"""Concurrent topic administration against a live fjord process (issue 18 item 1).

Three clients creating topics at once (one CreateTopics of 100 topics,
another of 3, topics auto-created by Metadata and produce) used to stop the
broker on `assertion failed at src/storage/durability.cc: !in_flight_: a
durability round is already in flight`: a metadata-log append acknowledged
inside the completion of a durability round started the next round, and the
completing round then started one more. This test starts `fjord start --smp 2`
on a fresh directory (on /dev/shm unless --dir says otherwise: the run
creates thousands of partitions) and a free loopback port below 32768 and,
for --seconds, runs at once, each from its own thread and client:

  big        AdminClient CreateTopics of 100 topics (2 partitions each) in
             one request, again and again
  small      AdminClient CreateTopics of 3 topics (16 partitions each)
  deleter    AdminClient DeleteTopics of earlier batches (two thirds of them,
             each at least half a second old) while the others still write
             to and fetch from them
  auto       an idempotent Producer writing to a new topic name every few
             hundred ms (auto-created through its Metadata request) and to
             the earlier ones
  metadata   raw Metadata v4 requests that auto-create new names, and
             Metadata for every topic
  stable-N   two idempotent producers (acks=all) writing numbered records to
             2 topics x 16 partitions created at the start
  admin-prod an idempotent producer writing to the topics of the big and
             small batches, some of which are being deleted under it
  consumer   a Consumer assigned to every stable and auto-created partition
             from offset 0, checking offsets and values as it goes
  doomed     a Consumer fetching the batch topics, deleted ones included

It fails when
  * the broker process exits before the end, or its log has an
    `assertion failed` line (the log tail is printed);
  * a request goes unanswered for --timeout seconds: an admin call, a raw
    Metadata, a produced record's acknowledgement, librdkafka's own request
    timeouts (REQTMOUT in its log);
  * an admin call fails (every name is new, every deletion is of a topic that
    was created), or a record sent to a topic that is never deleted fails;
  * after the run, any partition of a topic never deleted that had records
    acknowledged does not hold every acknowledged record exactly once, at its
    acknowledged offset, each writer's records in send order, nothing that was
    never sent, nothing twice (raw Fetch v4, CRC-32C of every batch checked);
  * SIGTERM does not stop the broker with exit code 0 within --stop-timeout.

On failure the data directory and the broker log are kept and their paths
printed. Needs confluent-kafka (the integration venv; concurrent_admin.sh
installs it and runs this script with it).

Every client's acknowledgement latencies are printed (median, 99%, max).

Usage: concurrent_admin_test.py --fjord PATH [--seconds 20] [--timeout 30] [--smp 2]
                                [--dir DIR] [--keep] [--only big,stable0,...]
"""
import argparse
import collections
import concurrent.futures
import logging
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from crash_test import Conn, fetch_all, kstring  # noqa: E402

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

RUN = "%x" % (int(time.time() * 1000) % 0xFFFFFFFF)
BIG_TOPICS, BIG_PARTITIONS = 100, 2
SMALL_TOPICS, SMALL_PARTITIONS = 3, 16
STABLE_TOPICS, STABLE_PARTITIONS = 2, 16
AUTO_PARTITIONS = 4  # num.partitions of the broker, for auto-created topics
LEADER_NOT_AVAILABLE = 5
MAX_PENDING = 200  # records a producer may have unacknowledged


# ---------------------------------------------------------------------------
class Outcome:
    """Failures (the first stops the run) and counters, shared by the threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.failures = []
        self.counts = collections.Counter()
        self.stop = threading.Event()

    def fail(self, msg, first=False):
        with self.lock:
            self.failures.insert(0 if first else len(self.failures), msg)
        self.stop.set()

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] += n


class ClientLog(logging.Handler):
    """librdkafka's log lines (served by poll()); a request timeout fails the run."""

    def __init__(self, out, name):
        super().__init__(logging.INFO)
        self.out = out
        self.name_ = name

    def emit(self, record):
        msg = record.getMessage()
        if "REQTMOUT" in msg:
            self.out.fail(f"{self.name_}: librdkafka request timeout: {msg}")
        else:
            self.out.count(f"{self.name_} log lines")


def client_logger(out, name):
    lg = logging.getLogger(f"fjord-concurrent-admin.{name}")
    lg.propagate = False
    lg.setLevel(logging.INFO)
    if not lg.handlers:
        lg.addHandler(ClientLog(out, name))
    return lg


# ---------------------------------------------------------------------------
class Broker:
    def __init__(self, binary, smp, work_dir, timeout_s):
        self.binary = binary
        self.smp = smp
        self.log_dir = os.path.join(work_dir, "data")
        self.log_path = os.path.join(work_dir, "broker.log")
        self.timeout_s = timeout_s
        self.proc = None
        self.port = None

    def start(self, rng):
        for _attempt in range(5):
            self.port = free_port(rng)
            with open(self.log_path, "ab") as log:
                log.write(f"==== start on port {self.port} ====\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [
                        self.binary, "start",
                        "--smp", str(self.smp),
                        "--log-dirs", self.log_dir,
                        "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                        "--override", f"num.partitions={AUTO_PARTITIONS}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + max(30, self.timeout_s)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if api_versions_ok(self.port):
                    return
                time.sleep(0.05)
            else:
                raise AssertionError(f"broker did not answer ApiVersions within {max(30, self.timeout_s)} s")
            if "in use" not in self.log_tail(5).lower():
                raise AssertionError(f"broker exited with {self.proc.returncode} at start-up")
            # Someone took the port between our probe and the broker's bind.
        raise AssertionError("no free port after 5 attempts")

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def assertion_lines(self):
        with open(self.log_path, "rb") as f:
            return [l for l in f.read().decode(errors="replace").splitlines() if "assertion failed" in l]

    def watch(self, out, finished):
        """Polls the process; an exit before `finished` fails the run."""
        while not finished.is_set():
            rc = self.proc.poll()
            if rc is not None:
                asserts = self.assertion_lines()
                out.fail(f"the broker exited during the run (exit code {rc})"
                         + (f": {asserts[0]}" if asserts else ""), first=True)
                return
            finished.wait(0.05)

    def terminate(self, stop_timeout_s):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def free_port(rng):
    """A free loopback port below the kernel's ephemeral range (32768 up), so
    that no client connection's local port can take it before the broker binds."""
    for _ in range(200):
        port = rng.randrange(10000, 32768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below 32768")


def api_versions_ok(port):
    try:
        c = Conn(port, timeout=2)
        try:
            r = c.call(18, 0, b"")
        finally:
            c.close()
        return struct.unpack_from(">h", r, 0)[0] == 0
    except (OSError, ConnectionError, struct.error):
        return False


# ---------------------------------------------------------------------------
class State:
    """What the clients created, deleted, sent and had acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.batches = collections.deque()  # (created at, kind, [names]) of doomed batches, oldest first
        self.batch_topics = []  # (name, partitions) of every created batch topic, not yet deleted
        self.deleted = set()  # names ever sent in a DeleteTopics
        self.verified = {}  # name -> partitions: topics never to be deleted
        self.created = set()  # every name created or auto-created
        self.acked = collections.defaultdict(dict)  # (topic, partition) -> {value: offset}
        self.inflight = {}  # value -> (topic, partition, sent at)
        self.ack_s = collections.defaultdict(list)  # writer -> acknowledgement latencies

    def topic_created(self, kind, names, partitions, doomed):
        with self.lock:
            self.created.update(names)
            for n in names:
                if kind != "stable":
                    self.batch_topics.append((n, partitions))
                if not doomed:
                    self.verified[n] = partitions
            if doomed:
                self.batches.append((time.monotonic(), kind, list(names)))


def on_delivery_factory(out, state, name, timeout_s):
    def on_delivery(err, msg):
        value = msg.value()
        now = time.monotonic()
        with state.lock:
            topic, partition, sent = state.inflight.pop(value, (msg.topic(), msg.partition(), now))
            deleted = topic in state.deleted
            if err is None:
                state.acked[(topic, msg.partition())][value] = msg.offset()
                state.ack_s[name].append(now - sent)
        if err is not None:
            if deleted:
                out.count("records to deleted topics failed")
            elif err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT) and out.stop.is_set():
                out.count("records purged after a failure")
            else:
                out.fail(f"{name}: record {value!r} to {topic}-{partition} (never deleted) failed: {err}")
        elif now - sent > timeout_s:
            out.fail(f"{name}: record {value!r} to {topic}-{msg.partition()} acknowledged after {now - sent:.1f} s")
        else:
            out.count("records acknowledged")

    return on_delivery


def producer_config(port, name, out, timeout_s, auto_create=True):
    return {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "client.id": f"concurrent-admin-{name}",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "request.timeout.ms": int(timeout_s * 1000),
        "message.timeout.ms": int(timeout_s * 1000) * 2,
        "socket.timeout.ms": int(timeout_s * 1000),
        "allow.auto.create.topics": auto_create,
        "topic.metadata.refresh.interval.ms": 1000,
        "logger": client_logger(out, name),
        "log_level": 4,
    }


class Workers:
    def __init__(self, args, port, out, state):
        self.args = args
        self.port = port
        self.out = out
        self.state = state
        self.bootstrap = f"127.0.0.1:{port}"
        self.deadline = time.monotonic() + args.seconds
        self.timeout_s = args.timeout
        self.stable = [f"stable-{RUN}-{i}" for i in range(STABLE_TOPICS)]

    def running(self):
        return not self.out.stop.is_set() and time.monotonic() < self.deadline

    def admin(self, name):
        return AdminClient(
            {
                "bootstrap.servers": self.bootstrap,
                "client.id": f"concurrent-admin-{name}",
                "socket.timeout.ms": int(self.timeout_s * 1000),
                "logger": client_logger(self.out, name),
                "log_level": 4,
            }
        )

    def wait_all(self, what, futures):
        """Every future answered within the timeout; returns {name: exception or None}."""
        deadline = time.monotonic() + self.timeout_s
        pending = set(futures.values())
        while pending and time.monotonic() < deadline:
            _done, pending = concurrent.futures.wait(pending, timeout=0.2)
            if pending and self.out.stop.is_set():
                return None  # another failure ended the run
        if pending:
            self.out.fail(f"{what}: {len(pending)} of {len(futures)} results not answered within {self.timeout_s} s")
            return None
        return {n: f.exception() for n, f in futures.items()}

    def create(self, admin, kind, names, partitions, doomed):
        t0 = time.monotonic()
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
            operation_timeout=self.timeout_s,
            request_timeout=self.timeout_s,
        )
        results = self.wait_all(f"CreateTopics of {len(names)} ({names[0]}...)", futures)
        if results is None:
            return False
        errors = {n: e for n, e in results.items() if e is not None}
        if errors:
            n, e = next(iter(errors.items()))
            self.out.fail(f"CreateTopics of {len(names)}: {len(errors)} failed, e.g. {n}: {e}")
            return False
        self.out.count(f"CreateTopics of {len(names)}")
        self.out.count("topics created by CreateTopics", len(names))
        ms = int((time.monotonic() - t0) * 1000)
        with self.out.lock:
            key = f"max CreateTopics of {len(names)} ms"
            self.out.counts[key] = max(self.out.counts[key], ms)
        self.state.topic_created(kind, names, partitions, doomed)
        return True

    # -- the threads ---------------------------------------------------------
    def big(self):
        admin = self.admin("big")
        batch = 0
        while self.running():
            names = [f"big-{RUN}-{batch}-{i}" for i in range(BIG_TOPICS)]
            self.create(admin, "big", names, BIG_PARTITIONS, doomed=batch % 3 != 0)
            batch += 1

    def small(self):
        admin = self.admin("small")
        batch = 0
        while self.running():
            names = [f"small-{RUN}-{batch}-{i}" for i in range(SMALL_TOPICS)]
            self.create(admin, "small", names, SMALL_PARTITIONS, doomed=batch % 3 != 0)
            batch += 1
            time.sleep(0.02)

    def deleter(self):
        admin = self.admin("deleter")
        while self.running():
            with self.state.lock:
                ready = self.state.batches and time.monotonic() - self.state.batches[0][0] > 0.5
                if ready:
                    _t, kind, names = self.state.batches.popleft()
                    self.state.deleted.update(names)
                    gone = set(names)
                    self.state.batch_topics = [t for t in self.state.batch_topics if t[0] not in gone]
            if not ready:
                time.sleep(0.05)
                continue
            futures = admin.delete_topics(names, operation_timeout=self.timeout_s, request_timeout=self.timeout_s)
            results = self.wait_all(f"DeleteTopics of {len(names)} ({names[0]}...)", futures)
            if results is None:
                return
            errors = {n: e for n, e in results.items() if e is not None}
            if errors:
                n, e = next(iter(errors.items()))
                self.out.fail(f"DeleteTopics of {len(names)}: {len(errors)} failed, e.g. {n}: {e}")
                return
            self.out.count("topics deleted", len(names))

    def produce_loop(self, name, producer, pick, per_round, pause_s):
        """Sends numbered records (value `name:seq`) to pick() targets."""
        seq = 0
        on_delivery = on_delivery_factory(self.out, self.state, name, self.timeout_s)
        while self.running():
            for _ in range(per_round):
                target = pick()
                if target is None:
                    break
                topic, partition = target
                # A bounded backlog, so that a record's wait is the broker's answer time.
                while len(producer) >= MAX_PENDING and self.running():
                    producer.poll(0.01)
                value = f"{name}:{seq}".encode()
                seq += 1
                with self.state.lock:
                    self.state.inflight[value] = (topic, partition, time.monotonic())
                while True:
                    try:
                        producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)
                self.out.count("records sent")
            producer.poll(pause_s)
        self.drain(name, producer)

    def drain(self, name, producer):
        """Waits for the acknowledgement of every record to a topic never
        deleted; records to deleted topics are purged after that."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline and not self.out.stop.is_set():
            with self.state.lock:
                waiting = [v for v, (t, _p, _s) in self.state.inflight.items()
                           if v.startswith(name.encode() + b":") and t not in self.state.deleted]
            if not waiting:
                break
            producer.poll(0.05)
        else:
            if self.out.stop.is_set():  # after another failure: no more waiting
                producer.purge()
                producer.flush(5)
                return
            self.out.fail(f"{name}: {len(waiting)} records to topics never deleted not acknowledged within "
                          f"{self.timeout_s} s of the end, e.g. {waiting[0]!r}")
        producer.purge()
        producer.flush(5)

    def stable_producer(self, idx):
        name = f"stable{idx}"
        producer = Producer(producer_config(self.port, name, self.out, self.timeout_s))
        rng = random.Random(idx)
        targets = [(t, p) for t in self.stable for p in range(STABLE_PARTITIONS)]
        self.produce_loop(name, producer, lambda: rng.choice(targets), 40, 0.01)

    def auto_producer(self):
        name = "auto"
        producer = Producer(producer_config(self.port, name, self.out, self.timeout_s))
        rng = random.Random(7)
        topics = []
        last_new = 0.0

        def pick():
            nonlocal last_new
            if time.monotonic() - last_new > 0.25:
                topics.append(f"auto-{RUN}-{len(topics)}")
                last_new = time.monotonic()
                with self.state.lock:
                    self.state.verified[topics[-1]] = AUTO_PARTITIONS
                    self.state.created.add(topics[-1])
            return rng.choice(topics[-8:]), rng.randrange(AUTO_PARTITIONS)

        self.produce_loop(name, producer, pick, 10, 0.02)

    def admin_topic_producer(self):
        name = "adminprod"
        producer = Producer(producer_config(self.port, name, self.out, self.timeout_s, auto_create=False))
        rng = random.Random(11)

        def pick():
            with self.state.lock:
                if not self.state.batch_topics:
                    return None
                topic, partitions = rng.choice(self.state.batch_topics[-300:])
            return topic, rng.randrange(partitions)

        self.produce_loop(name, producer, pick, 20, 0.02)

    def metadata(self):
        n = 0
        conn = Conn(self.port, timeout=self.timeout_s)
        try:
            while self.running():
                topic = f"meta-{RUN}-{n}"
                n += 1
                t0 = time.monotonic()
                try:
                    body = struct.pack(">i", 1) + kstring(topic) + b"\x01"  # allow auto-creation
                    r = conn.call(3, 4, body)
                    err = topic_error_v4(r)
                    if err not in (0, LEADER_NOT_AVAILABLE):
                        self.out.fail(f"Metadata v4 auto-creating {topic}: error {err}")
                        return
                    if n % 10 == 0:
                        conn.call(3, 4, struct.pack(">i", -1) + b"\x01")  # every topic
                except socket.timeout:
                    self.out.fail(f"Metadata v4 ({topic}) not answered within {self.timeout_s} s")
                    return
                except (OSError, ConnectionError) as e:
                    if not self.out.stop.is_set():
                        self.out.fail(f"Metadata v4 ({topic}): connection lost: {e!r}")
                    return
                self.out.count("raw Metadata auto-creations")
                with self.out.lock:
                    ms = int((time.monotonic() - t0) * 1000)
                    self.out.counts["max raw Metadata ms"] = max(self.out.counts["max raw Metadata ms"], ms)
                time.sleep(0.05)
        finally:
            conn.close()

    def consumer(self):
        """Reads every stable and auto-created partition from 0 while it is
        written: offsets contiguous, each writer's records in order."""
        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "client.id": "concurrent-admin-consumer",
                "group.id": f"concurrent-admin-{RUN}",
                "enable.auto.commit": False,
                "auto.offset.reset": "error",
                "check.crcs": True,
                "fetch.wait.max.ms": 100,
                "socket.timeout.ms": int(self.timeout_s * 1000),
                "logger": client_logger(self.out, "consumer"),
                "log_level": 4,
            }
        )
        assigned = set()
        next_offset = {}
        last_seq = {}
        try:
            while self.running():
                with self.state.lock:
                    want = [(t, p) for t in self.stable for p in range(STABLE_PARTITIONS)]
                    # Auto-created topics once something was acknowledged there.
                    for (t, p) in list(self.state.acked):
                        if t.startswith("auto-"):
                            want.append((t, p))
                new = [tp for tp in want if tp not in assigned]
                if new:
                    c.incremental_assign([TopicPartition(t, p, 0) for t, p in new])
                    assigned.update(new)
                    for tp in new:
                        next_offset[tp] = 0
                for msg in c.consume(500, 0.2):
                    if msg.error():
                        if msg.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        self.out.fail(f"consumer: {msg.topic()}-{msg.partition()}: {msg.error()}")
                        return
                    tp = (msg.topic(), msg.partition())
                    where = f"consumer: {tp[0]}-{tp[1]} at {msg.offset()}"
                    if msg.offset() != next_offset.get(tp, 0):
                        self.out.fail(f"{where}: expected offset {next_offset.get(tp, 0)}")
                        return
                    next_offset[tp] = msg.offset() + 1
                    writer, seq = msg.value().split(b":")
                    key = (tp, writer)
                    if int(seq) <= last_seq.get(key, -1):
                        self.out.fail(f"{where}: {msg.value()!r} after sequence {last_seq[key]}")
                        return
                    last_seq[key] = int(seq)
                    self.out.count("records consumed while running")
        finally:
            c.close()

    def doomed_consumer(self):
        """Fetches the batch topics, including those being deleted; errors expected."""
        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "client.id": "concurrent-admin-doomed",
                "group.id": f"concurrent-admin-doomed-{RUN}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
                "socket.timeout.ms": int(self.timeout_s * 1000),
                "logger": client_logger(self.out, "doomed"),
                "log_level": 4,
            }
        )
        assigned = set()
        try:
            while self.running():
                with self.state.lock:
                    want = [(t, p) for t, n in self.state.batch_topics[-60:] for p in range(min(n, 4))]
                new = [tp for tp in want if tp not in assigned]
                if new:
                    c.incremental_assign([TopicPartition(t, p, 0) for t, p in new])
                    assigned.update(new)
                for msg in c.consume(500, 0.2):
                    if msg.error():
                        self.out.count("doomed consumer errors")
                    else:
                        self.out.count("records consumed from batch topics")
        finally:
            c.close()


def topic_error_v4(r):
    """The error code of the only topic of a Metadata v4 response."""
    pos = 4
    (nbrokers,) = struct.unpack_from(">i", r, pos)
    pos += 4
    for _ in range(nbrokers):
        pos += 4
        (hl,) = struct.unpack_from(">h", r, pos)
        pos += 2 + hl + 4
        (rl,) = struct.unpack_from(">h", r, pos)
        pos += 2 + max(rl, 0)
    (cl,) = struct.unpack_from(">h", r, pos)
    pos += 2 + max(cl, 0) + 4
    (ntopics,) = struct.unpack_from(">i", r, pos)
    if ntopics != 1:
        raise AssertionError(f"Metadata v4 for one topic answered {ntopics}")
    return struct.unpack_from(">h", r, pos + 4)[0]


# ---------------------------------------------------------------------------
def verify(port, state, out):
    """Every acknowledged record of a topic never deleted, once, at its offset, in order."""
    checked = 0
    records_checked = 0
    for (topic, partition), acked in sorted(state.acked.items()):
        if topic in state.deleted:
            continue
        if topic not in state.created:
            raise AssertionError(f"acknowledged records in {topic}, which the test does not know")
        records, _batches, hw = fetch_all(port, topic, partition)
        where = f"{topic}-{partition}"
        offsets = [o for o, _k, _v in records]
        if offsets != list(range(len(records))) or hw != len(records):
            out.fail(f"{where}: offsets {offsets[:5]}... are not 0..{len(records) - 1} (high watermark {hw})")
            continue
        seen = {}
        last = {}
        for offset, _key, value in records:
            if value in seen:
                out.fail(f"{where}: {value!r} at offsets {seen[value]} and {offset}")
                break
            seen[value] = offset
            try:
                writer, seq = value.split(b":")
                seq = int(seq)
            except ValueError:
                out.fail(f"{where} at {offset}: {value!r} was never sent")
                break
            if seq <= last.get(writer, -1):
                out.fail(f"{where} at {offset}: {value!r} after {writer.decode()}:{last[writer]} (out of order)")
                break
            last[writer] = seq
        for value, offset in acked.items():
            if seen.get(value) != offset:
                out.fail(f"{where}: {value!r} acknowledged at {offset}, found at {seen.get(value)}")
                break
        checked += 1
        records_checked += len(acked)
    return checked, records_checked


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fjord", required=True, help="the fjord binary")
    ap.add_argument("--seconds", type=float, default=20, help="how long the clients run")
    ap.add_argument("--timeout", type=float, default=30, help="seconds any request may wait for its answer")
    ap.add_argument("--stop-timeout", type=float, default=30, help="seconds SIGTERM may take")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--dir", help="where the data directory goes (default: /dev/shm, else $TMPDIR or /tmp)")
    ap.add_argument("--only", help="comma-separated client threads to run (diagnosis), e.g. stable0,big")
    ap.add_argument("--keep", action="store_true", help="keep the data directory even when the test passes")
    args = ap.parse_args()

    started = time.monotonic()
    if args.dir is None and os.access("/dev/shm", os.W_OK):
        # tmpfs: thousands of partition directories are created and removed
        # in seconds, where the disk of a busy machine takes minutes.
        args.dir = "/dev/shm"
    work_dir = tempfile.mkdtemp(prefix="fjord-concurrent-admin-", dir=args.dir)
    out = Outcome()
    state = State()
    broker = Broker(os.path.abspath(args.fjord), args.smp, work_dir, args.timeout)
    finished = threading.Event()
    rc = None
    summary = {}
    try:
        broker.start(random.Random())
        print(f"concurrent_admin: broker on port {broker.port}, data in {work_dir}, {args.seconds:g} s of clients",
              flush=True)
        watcher = threading.Thread(target=broker.watch, args=(out, finished), daemon=True)
        watcher.start()

        w = Workers(args, broker.port, out, state)
        setup = w.admin("setup")
        w.create(setup, "stable", w.stable, STABLE_PARTITIONS, doomed=False)
        w.deadline = time.monotonic() + args.seconds
        jobs = [("big", w.big), ("small", w.small), ("deleter", w.deleter), ("auto", w.auto_producer),
                ("metadata", w.metadata), ("stable0", lambda: w.stable_producer(0)),
                ("stable1", lambda: w.stable_producer(1)), ("adminprod", w.admin_topic_producer),
                ("consumer", w.consumer), ("doomed", w.doomed_consumer)]

        def run(name, fn):
            try:
                fn()
            except Exception:  # noqa: BLE001 - any crash of a client thread fails the run
                out.fail(f"{name}: {traceback.format_exc()}")

        if args.only:
            jobs = [j for j in jobs if j[0] in args.only.split(",")]
        threads = [threading.Thread(target=run, args=j, name=j[0], daemon=True) for j in jobs]
        for t in threads:
            t.start()
        # Every thread stops at the deadline (or the first failure) and then
        # drains; one stuck longer than that waits for an answer that never came.
        join_deadline = w.deadline + 3 * args.timeout + 10
        for t in threads:
            t.join(max(0.0, join_deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            out.fail(f"client threads still waiting for answers: {', '.join(stuck)}")
        if broker.proc.poll() is None and not out.failures:
            summary["partitions verified"], summary["acknowledged records verified"] = verify(broker.port, state, out)
        finished.set()
        if broker.proc.poll() is None:
            rc = broker.terminate(args.stop_timeout)
            if rc is None:
                out.fail(f"the broker did not stop within {args.stop_timeout} s of SIGTERM")
            elif rc != 0:
                out.fail(f"the broker exited with {rc} after SIGTERM")
        asserts = broker.assertion_lines()
        if asserts and not out.failures:
            out.fail(f"the broker log has {len(asserts)} assertion failure(s): {asserts[0]}")
    except Exception:  # noqa: BLE001
        out.fail(traceback.format_exc())
    finally:
        finished.set()
        if broker.proc is not None and broker.proc.poll() is None:
            broker.proc.kill()
            broker.proc.wait()

    counts = dict(out.counts)
    for k in sorted(counts):
        if "log lines" not in k:
            print(f"  {k}: {counts[k]}")
    for name, lat in sorted(state.ack_s.items()):
        lat.sort()
        print(f"  {name} acknowledgements: {len(lat)}, median {lat[len(lat) // 2] * 1000:.0f} ms, "
              f"99% {lat[len(lat) * 99 // 100] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    elapsed = time.monotonic() - started
    if out.failures:
        for f in out.failures[:10]:
            print(f"FAIL: {f}")
        if len(out.failures) > 10:
            with open(os.path.join(work_dir, "failures.txt"), "w") as f:
                f.write("\n".join(out.failures) + "\n")
            print(f"FAIL: ... and {len(out.failures) - 10} more ({work_dir}/failures.txt)")
        print(f"---- broker log tail ({broker.log_path}) ----")
        print(broker.log_tail(40))
        print(f"concurrent_admin: FAILED after {elapsed:.1f} s; data kept in {work_dir}")
        sys.exit(1)
    print(f"concurrent_admin: ok in {elapsed:.1f} s (SIGTERM exit code {rc})")
    if args.keep:
        print(f"concurrent_admin: data kept in {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
