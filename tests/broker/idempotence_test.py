#!/usr/bin/env python3
"""Idempotent producers under failure, against the fjord binary (and, with
--kafka, the same script against the Apache Kafka 4.4 reference broker).

Raw requests (InitProducerId v0, Produce v8, Fetch v4, DescribeProducers v0,
written by hand; stdlib only), one fresh single-partition topic per scenario:

  sequence   duplicates of the last 5 batches are acknowledged with their
             original offsets; gaps, partial overlaps, evicted batches and a
             new epoch that does not start at 0 get OUT_OF_ORDER_SEQUENCE_NUMBER;
             an older epoch gets INVALID_PRODUCER_EPOCH
  unknown    a producer the partition has no state for (never issued, or
             issued but new here) starting at a non-zero sequence; a
             sequence that wraps past INT32_MAX
  lost_ack   a batch whose connection is cut before the answer (alone, and
             three pipelined) is resent on a new connection and lands once
  restart    seven batches, the broker stopped (SIGTERM, then in a second
             scenario SIGKILL) and restarted on the same directory, the
             batches resent: duplicates recognized from the restored
             producer state (snapshot + log replay) with their original
             offsets: the last batch on both brokers; after SIGKILL the
             last 5 on Fjord (FJORD_DIFFERS)
  describe   DescribeProducers of a partition after the restarts

Every answer (error code, base offset) is compared with EXPECTED, recorded
from Kafka 4.4 (`--kafka` re-checks it against the reference broker), except
FJORD_DIFFERS: after a crash Fjord still recognizes duplicates of a
producer's last 5 batches, where Kafka knows only the last one. Then each
topic is read back with Fetch: every record once, in sequence order.

With --java CLASSPATH (the integration suite's kafka-clients 4.4 jars and
classes, tests/integration/java), the Java producer with default settings
(idempotent, acks=all) sends numbered records to 3 partitions while the
broker is killed with SIGKILL twice and restarted on the same port, then
again while it is stopped (SIGSTOP) for 4 s twice with request.timeout.ms
1.5 s, so that requests time out and are retried with the same sequences:
every acknowledged record must be present once at its acknowledged offset,
none twice, in send order per partition.

Usage: idempotence_test.py --fjord PATH [--kafka] [--java CLASSPATH] [--only NAME]
"""
import argparse
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from crash_test import Conn, fetch_all, kstring, metadata_v4, zigzag_varint  # noqa: E402
from crash_test import crc32c  # noqa: E402

KAFKA_REF = os.path.join(REPO, "tests", "kafka_ref", "kafka-ref")
INT32_MAX = 2**31 - 1
NONE, OUT_OF_ORDER, INVALID_EPOCH = 0, 45, 47
RUN = "%x" % int(time.time() * 1000)

# (scenario, step) -> (error code, base offset). Recorded from Kafka 4.4.0
# (`--kafka` checks that it still answers this).
EXPECTED = {
    ('sequence', 'first'): (0, 0),
    ('sequence', 'second'): (0, 2),
    ('sequence', 'dup_first'): (0, 0),
    ('sequence', 'dup_second'): (0, 2),
    ('sequence', 'gap'): (45, -1),
    ('sequence', 'third'): (0, 3),
    ('sequence', 'same_first_seq_shorter'): (45, -1),
    ('sequence', 'overlap_middle'): (45, -1),
    ('sequence', 'seq6'): (0, 6),
    ('sequence', 'seq7'): (0, 7),
    ('sequence', 'seq8'): (0, 8),
    ('sequence', 'seq9'): (0, 9),
    ('sequence', 'seq10'): (0, 10),
    ('sequence', 'dup_evicted'): (45, -1),
    ('sequence', 'dup_oldest_retained'): (0, 6),
    ('sequence', 'new_epoch_nonzero_seq'): (45, -1),
    ('sequence', 'new_epoch_seq0'): (0, 11),
    ('sequence', 'old_epoch'): (47, -1),
    ('sequence', 'new_epoch_seq1'): (0, 12),
    ('sequence', 'new_epoch_dup_seq0'): (0, 11),
    ('sequence', 'dup_from_old_epoch'): (47, -1),
    ('unknown', 'never_issued_seq7'): (0, 0),
    ('unknown', 'never_issued_seq8'): (0, 1),
    ('unknown', 'never_issued_dup_seq7'): (0, 0),
    ('unknown', 'issued_seq3'): (0, 2),
    ('unknown', 'issued_seq5'): (45, -1),
    ('unknown', 'issued_seq4'): (0, 3),
    ('unknown', 'wrap_first'): (0, 4),
    ('unknown', 'wrap_next'): (0, 7),
    ('unknown', 'wrap_dup'): (0, 4),
    ('unknown', 'wrap_restart_at_0'): (45, -1),
    ('lost_ack', 'retry_after_lost_ack'): (0, 0),
    ('lost_ack', 'retry_pipelined_seq2'): (0, 2),
    ('lost_ack', 'retry_pipelined_seq3'): (0, 3),
    ('lost_ack', 'retry_pipelined_seq4'): (0, 4),
    ('lost_ack', 'retry_racing_seq5'): (0, 5),
    ('lost_ack', 'after_retries'): (0, 6),
    ('restart_sigterm', 'seq0'): (0, 0),
    ('restart_sigterm', 'seq1'): (0, 1),
    ('restart_sigterm', 'seq2'): (0, 2),
    ('restart_sigterm', 'seq3'): (0, 3),
    ('restart_sigterm', 'seq4'): (0, 4),
    ('restart_sigterm', 'seq5'): (0, 5),
    ('restart_sigterm', 'seq6'): (0, 6),
    ('restart_sigterm', 'after_restart_dup_evicted_seq0'): (45, -1),
    ('restart_sigterm', 'after_restart_dup_seq2'): (45, -1),
    ('restart_sigterm', 'after_restart_dup_seq5'): (45, -1),
    ('restart_sigterm', 'after_restart_dup_last_seq6'): (0, 6),
    ('restart_sigterm', 'after_restart_gap_seq9'): (45, -1),
    ('restart_sigterm', 'after_restart_next_seq7'): (0, 7),
    ('restart_sigterm', 'after_restart_dup_seq7'): (0, 7),
    ('restart_sigterm', 'after_restart_dup_seq6_again'): (0, 6),
    ('restart_sigterm', 'describe_producers'): (0, [(0, 7), 1]),
    ('restart_sigkill', 'seq0'): (0, 0),
    ('restart_sigkill', 'seq1'): (0, 1),
    ('restart_sigkill', 'seq2'): (0, 2),
    ('restart_sigkill', 'seq3'): (0, 3),
    ('restart_sigkill', 'seq4'): (0, 4),
    ('restart_sigkill', 'seq5'): (0, 5),
    ('restart_sigkill', 'seq6'): (0, 6),
    ('restart_sigkill', 'after_restart_dup_evicted_seq0'): (45, -1),
    ('restart_sigkill', 'after_restart_dup_seq2'): (45, -1),
    ('restart_sigkill', 'after_restart_dup_seq5'): (45, -1),
    ('restart_sigkill', 'after_restart_dup_last_seq6'): (0, 6),
    ('restart_sigkill', 'after_restart_gap_seq9'): (45, -1),
    ('restart_sigkill', 'after_restart_next_seq7'): (0, 7),
    ('restart_sigkill', 'after_restart_dup_seq7'): (0, 7),
    ('restart_sigkill', 'after_restart_dup_seq6_again'): (0, 6),
    ('restart_sigkill', 'describe_producers'): (0, [(0, 7), 1]),
}

# Where Fjord answers differently on purpose (trap 20 of ../shared/COMPATIBILITY.md:
# a retried duplicate must be acknowledged, not answered 45). After a crash Fjord
# replays the log into the producer state, so it knows each producer's last 5
# batches; Kafka 4.4 loads the snapshot it takes after recovery, which holds only
# the last one, and answers 45 to a retry of an older one. The Java producer then
# bumps its epoch and writes those records again. Kafka, one request per
# connection at a time, rarely has more than one unacknowledged batch per
# partition on disk when it dies; Fjord appends pipelined requests while earlier
# ones wait for their acknowledgement, and the `java` part caught duplicates when
# Fjord kept only the last batch. After a clean stop both know only the last one.
FJORD_DIFFERS = {
    ("restart_sigkill", "after_restart_dup_seq2"): (0, 2),
    ("restart_sigkill", "after_restart_dup_seq5"): (0, 5),
}

# ---------------------------------------------------------------------------
# Wire format.
def encode_batch(values, producer_id, epoch, base_sequence, timestamp_ms=None):
    """One uncompressed v2 batch of keyless records from an idempotent producer."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    body = bytearray()
    for i, value in enumerate(values):
        rec = b"\x00" + zigzag_varint(0) + zigzag_varint(i) + zigzag_varint(-1)
        rec += zigzag_varint(len(value)) + value + zigzag_varint(0)
        body += zigzag_varint(len(rec)) + rec
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, ts, ts, producer_id, epoch, base_sequence, len(values))
    after_crc += body
    return struct.pack(">qiibI", 0, 4 + 1 + 4 + len(after_crc), -1, 2, crc32c(after_crc)) + after_crc


def produce_v8_request(topic, batch, partition=0):
    body = struct.pack(">hhi", -1, -1, 30000)  # null transactional id, acks=all, timeout
    body += struct.pack(">i", 1) + kstring(topic)
    body += struct.pack(">iii", 1, partition, len(batch)) + batch
    return body


def parse_produce_v8(r):
    """(error code, base offset) of the only partition."""
    pos = 0
    (nt,) = struct.unpack_from(">i", r, pos)
    (nl,) = struct.unpack_from(">h", r, pos + 4)
    pos += 6 + nl
    (np_,) = struct.unpack_from(">i", r, pos)
    assert nt == 1 and np_ == 1, (nt, np_)
    _index, err, base, _append_time, _log_start = struct.unpack_from(">ihqqq", r, pos + 4)
    return err, base


def init_producer_id(port):
    deadline = time.monotonic() + 30
    while True:
        c = Conn(port)
        try:
            r = c.call(22, 0, struct.pack(">hi", -1, 60000))
        finally:
            c.close()
        _throttle, err, pid, epoch = struct.unpack_from(">ihqh", r, 0)
        # Kafka answers COORDINATOR_LOAD_IN_PROGRESS until its producer id manager is ready.
        if err not in (14, 15) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert err == 0, "InitProducerId: error %d" % err
    return pid, epoch


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def describe_producers(port, topic, partition=0):
    """DescribeProducers v0: (error, [(producer id, epoch, last sequence, coordinator epoch, txn start)])."""
    name = topic.encode()
    body = uvarint(2) + uvarint(len(name) + 1) + name + uvarint(2) + struct.pack(">i", partition) + b"\x00" + b"\x00"
    c = Conn(port)
    try:
        c.correlation += 1
        # Flexible request header v2: client id (int16 string), then tagged fields.
        header = struct.pack(">hhi", 61, 0, c.correlation) + kstring("idempotence-test") + b"\x00"
        c.sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        r = c.receive(c.correlation)
    finally:
        c.close()
    pos = 1  # response header v1: tagged fields
    pos += 4  # throttle
    _nt, pos = read_uvarint(r, pos)
    nl, pos = read_uvarint(r, pos)
    pos += nl - 1
    _np, pos = read_uvarint(r, pos)
    _idx, err = struct.unpack_from(">ih", r, pos)
    pos += 6
    ml, pos = read_uvarint(r, pos)
    pos += max(ml - 1, 0)
    n, pos = read_uvarint(r, pos)
    out = []
    for _ in range(n - 1):
        pid, epoch, last_seq, _ts, coord_epoch, txn_start = struct.unpack_from(">qiiqiq", r, pos)
        pos += 36
        tl, pos = read_uvarint(r, pos)
        assert tl == 0, "tagged fields in a producer state"
        out.append((pid, epoch, last_seq, coord_epoch, txn_start))
    return err, out


# ---------------------------------------------------------------------------
# Brokers: start, stop with a signal, restart on the same directory and port.
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc_alive, what, deadline_s=90):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not proc_alive():
            raise AssertionError("%s exited during start-up" % what)
        try:
            c = Conn(port, timeout=2)
            try:
                err, n = metadata_v4(c, "idempotence-ready")
            finally:
                c.close()
            if err == 0 and n == 1:
                return
        except (OSError, ConnectionError, struct.error):
            pass
        time.sleep(0.1)
    raise AssertionError("%s did not become ready in %d s" % (what, deadline_s))


class Fjord:
    label = "fjord"

    def __init__(self, binary, work):
        self.binary = binary
        self.dir = os.path.join(work, "fjord")
        self.log_path = os.path.join(work, "fjord.log")
        self.port = free_port()
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            log.write(b"\n==== start ====\n")
            log.flush()
            self.proc = subprocess.Popen(
                [self.binary, "start", "--smp", "1", "--log-dirs", self.dir,
                 "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % self.port,
                 "--override", "num.partitions=1"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_ready(self.port, lambda: self.proc.poll() is None, "fjord", 30)

    def stop(self, sig):
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("fjord did not stop within 30 s of signal %d" % sig) from None
        if sig == signal.SIGTERM and code != 0:
            raise AssertionError("fjord exited with %d on SIGTERM" % code)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self):
        if not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read()[-4000:].decode(errors="replace")


class Kafka:
    """The reference: kafka-ref starts it; restarts relaunch its JVM on the same config."""

    label = "kafka"

    def __init__(self, work):
        self.dir = os.path.join(work, "kafka")
        self.port = None

    def pid(self):
        with open(os.path.join(self.dir, "kafka.pid")) as f:
            return int(f.read().strip())

    def alive(self):
        try:
            os.kill(self.pid(), 0)
            return True
        except (OSError, ValueError):
            return False

    def start(self):
        if self.port is None:
            out = subprocess.run([KAFKA_REF, "start", self.dir], check=True, capture_output=True, text=True).stdout
            self.port = int(out.strip().splitlines()[-1].rsplit(":", 1)[1])
            wait_ready(self.port, self.alive, "kafka")
            return
        cp = subprocess.run([KAFKA_REF, "classpath"], check=True, capture_output=True, text=True).stdout.strip()
        cache = os.environ.get("FJORD_CACHE", os.path.join(os.environ.get("HOME", "/root"), ".cache", "fjord"))
        log4j = os.path.join(cache, "kafka-4.4.0", "log4j2-server.properties")
        with open(os.path.join(self.dir, "kafka.log"), "ab") as log:
            proc = subprocess.Popen(
                ["java", "-Xms1g", "-Xmx1g", "-Dlog4j2.configurationFile=" + log4j, "-Dkafka.logs.dir=" + self.dir,
                 "-cp", cp, "kafka.Kafka", os.path.join(self.dir, "server.properties")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        with open(os.path.join(self.dir, "kafka.pid"), "w") as f:
            f.write("%d\n" % proc.pid)
        self.proc = proc
        wait_ready(self.port, self.alive, "kafka")

    def stop(self, sig):
        pid = self.pid()
        os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while self.alive() and time.monotonic() < deadline:
            if getattr(self, "proc", None) is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if self.alive() and not (getattr(self, "proc", None) is not None and self.proc.poll() is not None):
            raise AssertionError("kafka did not stop within 60 s of signal %d" % sig)

    def signal(self, sig):
        os.kill(self.pid(), sig)

    def close(self):
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:  # our child: stop and reap it here
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run([KAFKA_REF, "stop", self.dir], check=False)

    def log_tail(self):
        return ""


# ---------------------------------------------------------------------------
# Scenarios: each returns [(step, (error, base offset))] and the values that
# must be in its topic, in order.
class Producer:
    def __init__(self, broker, topic, pid=None, epoch=0):
        self.broker, self.topic = broker, topic
        if pid is None:
            pid, epoch = init_producer_id(broker.port)
        self.pid, self.epoch = pid, epoch
        self.steps = []

    def batch(self, seq, n, epoch=None):
        values = [b"%s-seq%d" % (self.topic.encode(), (seq + i) % (INT32_MAX + 1)) for i in range(n)]
        return encode_batch(values, self.pid, self.epoch if epoch is None else epoch, seq)

    def send(self, step, seq, n=1, epoch=None, conn=None):
        own = conn is None
        c = Conn(self.broker.port) if own else conn
        deadline = time.monotonic() + 15
        try:
            while True:
                got = parse_produce_v8(c.call(0, 8, produce_v8_request(self.topic, self.batch(seq, n, epoch))))
                # Right after a restart the partition may not have its leader yet.
                if got[0] not in (5, 6) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            if own:
                c.close()
        self.steps.append((step, got))
        return got


def topic_for(broker, scenario):
    t = "idem-%s-%s" % (scenario, RUN)
    c = Conn(broker.port)
    try:
        deadline = time.monotonic() + 30
        while metadata_v4(c, t) != (0, 1):
            if time.monotonic() > deadline:
                raise AssertionError("topic %s not created" % t)
            time.sleep(0.1)
    finally:
        c.close()
    return t


def values_of(topic, seqs):
    return [b"%s-seq%d" % (topic.encode(), s) for s in seqs]


def scenario_sequence(broker):
    t = topic_for(broker, "sequence")
    p = Producer(broker, t)
    p.send("first", 0, 2)
    p.send("second", 2)
    p.send("dup_first", 0, 2)
    p.send("dup_second", 2)
    p.send("gap", 5)
    p.send("third", 3, 3)
    p.send("same_first_seq_shorter", 0, 1)
    p.send("overlap_middle", 4, 2)
    for s in range(6, 11):
        p.send("seq%d" % s, s)
    p.send("dup_evicted", 3, 3)  # the sixth batch back: no longer retained
    p.send("dup_oldest_retained", 6)
    p.send("new_epoch_nonzero_seq", 5, epoch=p.epoch + 1)
    p.send("new_epoch_seq0", 0, epoch=p.epoch + 1)
    p.send("old_epoch", 11, epoch=p.epoch)
    p.send("new_epoch_seq1", 1, epoch=p.epoch + 1)
    p.send("new_epoch_dup_seq0", 0, epoch=p.epoch + 1)
    p.send("dup_from_old_epoch", 10, epoch=p.epoch)
    return p.steps, {t: values_of(t, range(11)) + values_of(t, [0, 1])}


def scenario_unknown(broker):
    t = topic_for(broker, "unknown")
    never = Producer(broker, t, pid=10**12 + random.randrange(10**9), epoch=0)
    never.send("never_issued_seq7", 7)
    never.send("never_issued_seq8", 8)
    never.send("never_issued_dup_seq7", 7)
    fresh = Producer(broker, t)
    fresh.send("issued_seq3", 3)
    fresh.send("issued_seq5", 5)
    fresh.send("issued_seq4", 4)
    wrap = Producer(broker, t)
    wrap.send("wrap_first", INT32_MAX - 1, 3)  # sequences INT32_MAX-1, INT32_MAX, 0
    wrap.send("wrap_next", 1)
    wrap.send("wrap_dup", INT32_MAX - 1, 3)
    wrap.send("wrap_restart_at_0", 0)
    steps = never.steps + fresh.steps + wrap.steps
    want = (values_of(t, [7, 8]) + values_of(t, [3, 4])
            + values_of(t, [INT32_MAX - 1, INT32_MAX, 0, 1]))
    return steps, {t: want}


def scenario_lost_ack(broker):
    t = topic_for(broker, "lost-ack")
    p = Producer(broker, t)
    # The answer to seq 0 is lost: the connection is cut right after sending.
    c = Conn(broker.port)
    c.send(0, 8, produce_v8_request(t, p.batch(0, 2)))
    time.sleep(0.2)
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    p.send("retry_after_lost_ack", 0, 2)
    # Three pipelined batches, none answered; all resent on a new connection.
    c = Conn(broker.port)
    for s in (2, 3, 4):
        c.send(0, 8, produce_v8_request(t, p.batch(s, 1)))
    time.sleep(0.2)
    c.close()
    c = Conn(broker.port)
    try:
        for s in (2, 3, 4):
            p.send("retry_pipelined_seq%d" % s, s, conn=c)
    finally:
        c.close()
    # Resent immediately, while the first may not have been processed yet.
    c = Conn(broker.port)
    c.send(0, 8, produce_v8_request(t, p.batch(5, 1)))
    c.close()
    p.send("retry_racing_seq5", 5)
    p.send("after_retries", 6)
    return p.steps, {t: values_of(t, range(7))}


def scenario_restart(broker, sig, name):
    t = topic_for(broker, name)
    p = Producer(broker, t)
    for s in range(7):
        p.send("seq%d" % s, s)
    broker.stop(sig)
    broker.start()
    p.send("after_restart_dup_evicted_seq0", 0)
    p.send("after_restart_dup_seq2", 2)
    p.send("after_restart_dup_seq5", 5)
    p.send("after_restart_dup_last_seq6", 6)
    p.send("after_restart_gap_seq9", 9)
    p.send("after_restart_next_seq7", 7)
    p.send("after_restart_dup_seq7", 7)
    p.send("after_restart_dup_seq6_again", 6)
    err, producers = describe_producers(broker.port, t)
    p.steps.append(("describe_producers", (err, [(e, s) for pid, e, s, _c, _x in producers if pid == p.pid]
                                           + [len(producers)])))
    return p.steps, {t: values_of(t, range(8))}


SCENARIOS = [
    ("sequence", scenario_sequence),
    ("unknown", scenario_unknown),
    ("lost_ack", scenario_lost_ack),
    ("restart_sigterm", lambda b: scenario_restart(b, signal.SIGTERM, "restart-sigterm")),
    ("restart_sigkill", lambda b: scenario_restart(b, signal.SIGKILL, "restart-sigkill")),
]


def check_log(broker, topic, want):
    records, _batches, hw = fetch_all(broker.port, topic, 0)
    got = [v for _o, _k, v in records]
    if got != want:
        raise AssertionError("%s: %s holds %r, expected %r" % (broker.label, topic, got, want))
    if hw != len(want):
        raise AssertionError("%s: %s high watermark %d, expected %d" % (broker.label, topic, hw, len(want)))


def run_scenarios(broker, only, record):
    failures = []
    for name, fn in SCENARIOS:
        if only and only not in name:
            continue
        steps, logs = fn(broker)
        for step, got in steps:
            got = list(got) if isinstance(got, tuple) else got
            if record:
                print("    (%r, %r): %r," % (name, step, tuple(got)))
                continue
            want = EXPECTED.get((name, step))
            if broker.label == "fjord":
                want = FJORD_DIFFERS.get((name, step), want)
            if want is None or tuple(got) != tuple(want):
                failures.append("%s %s/%s: got %r, expected %r" % (broker.label, name, step, tuple(got), want))
        for topic, want in logs.items():
            try:
                check_log(broker, topic, want)
            except AssertionError as e:
                failures.append(str(e))
        print("%s: %s: %s" % (broker.label, name, "ok" if not failures else "FAIL"), flush=True)
    return failures


# ---------------------------------------------------------------------------
# The Java producer with default settings across kill -9.
def java_restarts(broker, classpath, records, kills, stall=False):
    """kills disruptions while the Java producer sends: SIGKILL and a restart on the
    same port, or with stall, SIGSTOP for 4 s (the producer's request.timeout.ms is
    then 1.5 s: its requests time out and are retried with the same sequences while
    the originals are still in the stopped broker's socket buffers) and SIGCONT."""
    topic = "idem-java-%s-%s" % ("stall" if stall else "kill", RUN)
    partitions = 3
    c = Conn(broker.port)
    try:
        # Topics are auto-created with one partition here: make the Java topic with CreateTopics v4.
        body = struct.pack(">i", 1) + kstring(topic) + struct.pack(">ih", partitions, 1)
        body += struct.pack(">ii", 0, 0) + struct.pack(">ib", 30000, 0)
        r = c.call(19, 4, body)
        (nt,) = struct.unpack_from(">i", r, 4)
        (nl,) = struct.unpack_from(">h", r, 8)
        (err,) = struct.unpack_from(">h", r, 10 + nl)
        assert nt == 1 and err == 0, "CreateTopics %s: error %d" % (topic, err)
    finally:
        c.close()
    cmd = ["java", "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath, "IdempotentProducer",
           "127.0.0.1:%d" % broker.port, topic, str(partitions), str(records)]
    if stall:
        cmd.append("request.timeout.ms=1500")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    acked, errors, other = [], [], []
    lock = threading.Lock()

    def reader():
        for line in proc.stdout:
            f = line.split()
            with lock:
                if f and f[0] == "ack":
                    acked.append((int(f[1]), int(f[2]), f[3]))
                elif f and f[0] == "err":
                    errors.append(line.strip())
                else:
                    other.append(line.rstrip())

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    for k in range(kills):
        target = records * (k + 1) // (kills + 1)
        deadline = time.monotonic() + 120
        while True:
            with lock:
                n = len(acked)
            if n >= target:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("java producer: %d acks, waiting for %d; exit %s; output %s"
                                     % (n, target, proc.poll(), other[-20:]))
            time.sleep(0.01)
        with lock:
            n = len(acked)
        if n >= records:
            raise AssertionError("java producer: all %d records acknowledged before kill %d" % (records, k + 1))
        if stall:
            broker.signal(signal.SIGSTOP)
            time.sleep(4)
            broker.signal(signal.SIGCONT)
            print("%s: java: SIGSTOP for 4 s after %d acks" % (broker.label, n), flush=True)
            continue
        broker.stop(signal.SIGKILL)
        time.sleep(0.5)
        broker.start()
        print("%s: java: SIGKILL after %d acks, restarted" % (broker.label, n), flush=True)
    try:
        code = proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("java producer did not finish within 180 s") from None
    th.join(10)
    if code != 0 or errors or len(acked) != records:
        raise AssertionError("java producer: exit %d, %d acks of %d, errors %s, output %s"
                             % (code, len(acked), records, errors[:5], other[-20:]))
    # Every acknowledged record once, at its offset; none twice; send order per partition.
    for part in range(partitions):
        log, _batches, _hw = fetch_all(broker.port, topic, part)
        values = [v.decode() for _o, _k, v in log]
        mine = sorted((o, v) for p, o, v in acked if p == part)
        if values != [v for _o, v in mine] or [o for o, _v in mine] != list(range(len(values))):
            dup = len(values) - len(set(values))
            raise AssertionError("%s-%d: %d records (%d duplicated), %d acknowledged; first difference at %s"
                                 % (topic, part, len(values), dup, len(mine),
                                    next((i for i, (a, b) in enumerate(zip(values, mine)) if a != b[1]), None)))
        nums = [int(v[1:]) for v in values]
        if nums != sorted(nums):
            raise AssertionError("%s-%d: records out of send order" % (topic, part))
    retried = sum("retrying" in line for line in other)
    if stall and retried == 0:
        raise AssertionError("java producer: no request timed out and was retried during the stalls: %s" % other[-10:])
    print("%s: java: %d records acknowledged across %d %s (%d retry warnings), each present once in send order"
          % (broker.label, records, kills, "stalls" if stall else "kills", retried), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fjord", help="fjord binary")
    ap.add_argument("--kafka", action="store_true", help="also run against the reference Kafka 4.4")
    ap.add_argument("--record", action="store_true", help="print the reference's answers as EXPECTED entries")
    ap.add_argument("--java", metavar="CLASSPATH", help="kafka-clients jars and the IdempotentProducer class")
    ap.add_argument("--java-only", action="store_true", help="only the Java producer part")
    ap.add_argument("--java-records", type=int, default=6000)
    ap.add_argument("--only", help="only the scenarios whose name contains this")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fjord-idempotence-")
    brokers = []
    if args.fjord:
        brokers.append(Fjord(os.path.abspath(args.fjord), work))
    if args.kafka:
        brokers.append(Kafka(work))
    if not brokers:
        ap.error("nothing to test: give --fjord and/or --kafka")
    failures = []
    for b in brokers:
        try:
            b.start()
            if not args.java_only:
                failures += run_scenarios(b, args.only, args.record)
            if args.java:
                java_restarts(b, args.java, args.java_records, 2)
                java_restarts(b, args.java, args.java_records, 2, stall=True)
        except AssertionError as e:
            failures.append("%s: %s" % (b.label, e))
        finally:
            if failures:
                print("---- %s log (tail) ----\n%s" % (b.label, b.log_tail()), flush=True)
            b.close()
    for f in failures:
        print("FAIL " + f, flush=True)
    if failures:
        print("idempotence_test: FAIL (kept %s)" % work, flush=True)
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("idempotence_test: PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
