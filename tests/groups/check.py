#!/usr/bin/env python3
"""Consumer groups against Fjord, with Apache Kafka 4.4 as the reference.

Parts (each can be chosen with --parts):

  errors    Raw group requests (hand-encoded, non-flexible versions) in
            scripted sequences: the MEMBER_ID_REQUIRED handshake, a full
            join/sync, stale generations, unknown members, fenced static
            members, commits from outside the group, deletes of unknown and
            non-empty groups... sent to Kafka and to Fjord; every error code
            and the shape of every answer (who leads, which generation, how
            many members) must be equal.
  rejoin    Timed raw join sequences on both brokers (session and rebalance
            timeouts 30 s): a join with a second MEMBER_ID_REQUIRED id after
            the first was discarded, a lone leader rejoining Stable, a lone
            member rejoining CompletingRebalance, two members rebalancing, a
            leave: each answer must equal Kafka's and come within 1 s, as on
            Kafka; a rejoin while an id handed out is pending is held until
            that id's 6 s session expires, on both. Then the same for real
            clients (kafka-python and confluent-kafka) changing a lone
            consumer's subscription (issue 18 items 5 and 6).
  tools     The same workload on both brokers (12 partitions, 10 records
            each, known commits), then Kafka's kafka-consumer-groups from the
            4.4 jars: --describe must show the same CURRENT-OFFSET,
            LOG-END-OFFSET and LAG; --reset-offsets --to-earliest --execute
            must reset them on both; the Java console consumer (the classic
            protocol) reads with a group and leaves LAG 0.
  clients   librdkafka (the confluent-kafka module of this interpreter: run
            it with Debian's python3 and with the PyPI build) on Fjord: for
            range, roundrobin and cooperative-sticky, 3 consumers and 12
            partitions own every partition exactly once and, committing as
            they go, read every record exactly once across a member leaving;
            a SIGKILLed consumer's partitions move within its session
            timeout; a static member restarts without a rebalance; committed
            offsets (with metadata) survive a clean restart and a kill -9 of
            the broker. kafka-python groups too when it is installed.

Usage: check.py [--parts errors,rejoin,tools,kip848,clients] [--fjord PATH] [--kafka HOST:PORT]
                [--librdkafka-only]
Exit status 0 when everything passed.
"""
import argparse
import json
import os
import re
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
KAFKA_REF = os.path.join(REPO, "tests", "kafka_ref", "kafka-ref")
DEFAULT_FJORD = os.path.join(REPO, "build", "release", "src", "app", "fjord")
PARTITIONS = 12
BROKER_CONFIG = {"group.initial.rebalance.delay.ms": "0", "num.partitions": str(PARTITIONS),
                 "group.consumer.heartbeat.interval.ms": "500", "group.consumer.min.heartbeat.interval.ms": "500",
                 "group.consumer.session.timeout.ms": "6000", "group.consumer.min.session.timeout.ms": "6000"}


def log(*a):
    print(*a, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Brokers


class Fjord:
    name = "fjord"

    def __init__(self, binary, work, name="fjord", extra=None):
        self.binary = binary
        self.dir = os.path.join(work, name)
        self.proc = None
        self.port = free_port()
        self.smp = 2
        self.config = dict(BROKER_CONFIG, **(extra or {}))

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        args = [self.binary, "start", "--smp", str(self.smp), "--log-dirs", os.path.join(self.dir, "data"),
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}"]
        for k, v in self.config.items():
            args += ["--override", f"{k}={v}"]
        logf = open(os.path.join(self.dir, "broker.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fjord exited with {self.proc.returncode}; see {self.dir}/broker.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fjord did not start")

    def stop(self, sig=signal.SIGTERM):
        if not self.proc:
            return
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.proc = None
        if sig == signal.SIGTERM and rc != 0:
            raise RuntimeError(f"fjord exited with {rc} on SIGTERM")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"


class Kafka:
    name = "kafka"

    def __init__(self, work, running=None):
        self.dir = os.path.join(work, "kafka")
        self.port = None
        self.running = running  # HOST:PORT of a reference broker started with BROKER_CONFIG

    def start(self):
        if self.running:
            self.port = int(self.running.rsplit(":", 1)[1])
            return
        os.makedirs(self.dir, exist_ok=True)
        env = dict(os.environ, KAFKA_REF_CONFIG="\n".join(f"{k}={v}" for k, v in BROKER_CONFIG.items()))
        out = subprocess.run([KAFKA_REF, "start", self.dir], env=env, check=True, capture_output=True, text=True)
        self.port = int(out.stdout.strip().rsplit(":", 1)[1])

    def stop(self):
        if not self.running:
            subprocess.run([KAFKA_REF, "stop", self.dir], check=False, capture_output=True)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"


# ---------------------------------------------------------------------------
# Raw requests (non-flexible versions only: fixed-width lengths)


def s16(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def b32(b):
    return struct.pack(">i", len(b)) + b


def arr(items):
    return struct.pack(">i", len(items)) + b"".join(items)


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.p)
        self.p += struct.calcsize(fmt)
        return v[0]

    def i8(self):
        return self.take(">b")

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def i64(self):
        return self.take(">q")

    def str(self):
        n = self.i16()
        if n < 0:
            return None
        v = self.b[self.p:self.p + n].decode()
        self.p += n
        return v

    def bytes(self):
        n = self.i32()
        if n < 0:
            return None
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def array(self, fn):
        return [fn() for _ in range(self.i32())]


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.corr = 0

    def close(self):
        self.sock.close()

    def call(self, key, version, body):
        self.corr += 1
        hdr = struct.pack(">hhi", key, version, self.corr) + s16("groups-check")
        msg = hdr + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        n = struct.unpack(">i", self._read(4))[0]
        data = self._read(n)
        assert struct.unpack(">i", data[:4])[0] == self.corr
        return Reader(data[4:])

    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed")
            out += chunk
        return out


# Flexible versions (KIP-482): compact lengths and tagged fields.


def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def cstr(s):
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def carr(items):
    if items is None:
        return b"\x00"
    return uvarint(len(items) + 1) + b"".join(items)


class FlexReader(Reader):
    def uvarint(self):
        shift = n = 0
        while True:
            b = self.b[self.p]
            self.p += 1
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7

    def cstr(self):
        n = self.uvarint() - 1
        if n < 0:
            return None
        v = self.b[self.p:self.p + n].decode()
        self.p += n
        return v

    def carray(self, fn):
        n = self.uvarint() - 1
        return None if n < 0 else [fn() for _ in range(n)]

    def uuid(self):
        v = self.b[self.p:self.p + 16]
        self.p += 16
        return v

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.p += self.uvarint()


def flex_call(c, key, version, body):
    c.corr += 1
    msg = struct.pack(">hhi", key, version, c.corr) + s16("groups-check") + b"\x00" + body
    c.sock.sendall(struct.pack(">i", len(msg)) + msg)
    n = struct.unpack(">i", c._read(4))[0]
    r = FlexReader(c._read(n))
    assert r.i32() == c.corr
    r.tags()
    return r


def topic_ids(port, topic):
    """The topic's id (Metadata v10)."""
    c = Conn(port)
    try:
        r = flex_call(c, 3, 10, carr([b"\x00" * 16 + cstr(topic) + b"\x00"]) + b"\x01\x00\x00\x00")
        r.i32()
        r.carray(lambda: (r.i32(), r.cstr(), r.i32(), r.cstr(), r.tags()))
        r.cstr()
        r.i32()
        t = r.carray(lambda: (r.i16(), r.cstr(), r.uuid(), r.i8(),
                              r.carray(lambda: (r.i16(), r.i32(), r.i32(), r.i32(), r.carray(r.i32),
                                                r.carray(r.i32), r.carray(r.i32), r.tags())),
                              r.i32(), r.tags()))[0]
        return t[2]
    finally:
        c.close()


def cg_heartbeat(c, group, member, epoch, topics=None, regex=None, owned=None, rebalance=30000, assignor=None,
                 instance=None, version=1, tid=None):
    body = (cstr(group) + cstr(member) + struct.pack(">i", epoch) + cstr(instance) + cstr(None)
            + struct.pack(">i", rebalance) + carr(None if topics is None else [cstr(t) for t in topics]))
    if version >= 1:
        body += cstr(regex)
    body += cstr(assignor)
    body += carr(None if owned is None else
                 ([tid + carr([struct.pack(">i", p) for p in owned]) + b"\x00"] if owned else []))
    body += b"\x00"
    r = flex_call(c, 68, version, body)
    r.i32()
    out = {"error": r.i16(), "message": r.cstr(), "member": r.cstr(), "epoch": r.i32()}
    r.i32()
    present = r.i8()
    out["assignment"] = None
    if present >= 0:
        parts = r.carray(lambda: (r.uuid(), r.carray(r.i32), r.tags()))
        r.tags()
        out["assignment"] = sorted(p for _, ps, _ in parts for p in ps)
    return out


def cg_describe(c, group):
    r = flex_call(c, 69, 0, carr([cstr(group)]) + b"\x00" + b"\x00")
    r.i32()

    def assignment():
        tps = r.carray(lambda: (r.uuid(), r.cstr(), r.carray(r.i32), r.tags()))
        r.tags()
        return sorted(p for _, _, ps, _ in tps for p in ps)

    def member():
        m = {"id": r.cstr(), "instance": r.cstr(), "rack": r.cstr(), "epoch": r.i32(), "client": r.cstr(),
             "host": r.cstr(), "topics": r.carray(r.cstr), "regex": r.cstr()}
        m["assigned"] = assignment()
        m["target"] = assignment()
        r.tags()
        return m

    g = r.carray(lambda: {"error": r.i16(), "message": r.cstr(), "group": r.cstr(), "state": r.cstr(),
                          "epoch": r.i32(), "assignment_epoch": r.i32(), "assignor": r.cstr(),
                          "members": r.carray(member), "ops": (r.i32(), r.tags())})[0]
    return g


SUBSCRIPTION = struct.pack(">h", 0) + arr([s16("gt")]) + b32(b"")  # ConsumerProtocolSubscription v0


def join(c, group, member="", instance=None, ptype="consumer", protocols=(("range", SUBSCRIPTION),),
         session=10000, rebalance=10000):
    body = (s16(group) + struct.pack(">ii", session, rebalance) + s16(member) + s16(instance) + s16(ptype)
            + arr([s16(n) + b32(m) for n, m in protocols]))
    r = c.call(11, 5, body)
    r.i32()
    out = {"error": r.i16(), "generation": r.i32(), "protocol": r.str(), "leader": r.str(), "member": r.str()}
    out["members"] = r.array(lambda: (r.str(), r.str(), r.bytes()))
    return out


def sync(c, group, generation, member, instance=None, assignments=()):
    body = (s16(group) + struct.pack(">i", generation) + s16(member) + s16(instance)
            + arr([s16(m) + b32(a) for m, a in assignments]))
    r = c.call(14, 3, body)
    r.i32()
    return {"error": r.i16(), "assignment": r.bytes()}


def heartbeat(c, group, generation, member, instance=None):
    r = c.call(12, 3, s16(group) + struct.pack(">i", generation) + s16(member) + s16(instance))
    r.i32()
    return {"error": r.i16()}


def leave(c, group, members):
    r = c.call(13, 3, s16(group) + arr([s16(m) + s16(i) for m, i in members]))
    r.i32()
    out = {"error": r.i16()}
    out["members"] = r.array(lambda: (r.str(), r.str(), r.i16()))
    out["members"] = [e for _, _, e in out["members"]]
    return out


def commit(c, group, generation, member, offsets, instance=None, metadata=""):
    topics = {}
    for t, p, o in offsets:
        topics.setdefault(t, []).append(struct.pack(">iqi", p, o, -1) + s16(metadata))
    body = (s16(group) + struct.pack(">i", generation) + s16(member) + s16(instance)
            + arr([s16(t) + arr(ps) for t, ps in topics.items()]))
    r = c.call(8, 7, body)
    r.i32()
    errs = []
    for _ in range(r.i32()):
        r.str()
        errs += [(r.i32(), r.i16())[1] for _ in range(r.i32())]
    return {"errors": errs}


def fetch_offsets(c, group, topic, parts):
    r = c.call(9, 5, s16(group) + arr([s16(topic) + arr([struct.pack(">i", p) for p in parts])]))
    r.i32()
    out = []
    for _ in range(r.i32()):
        r.str()
        for _ in range(r.i32()):
            out.append((r.i32(), r.i64(), r.i32(), r.str(), r.i16()))
    return {"partitions": [(p, o, m, e) for p, o, _, m, e in out], "error": r.i16()}


def describe(c, group):
    r = c.call(15, 4, arr([s16(group)]) + b"\x00")
    r.i32()
    g = r.array(lambda: {"error": r.i16(), "group": r.str(), "state": r.str(), "ptype": r.str(),
                         "protocol": r.str(),
                         "members": len(r.array(lambda: (r.str(), r.str(), r.str(), r.str(), r.bytes(),
                                                         r.bytes()))),
                         "ops": r.i32()})[0]
    g.pop("ops")
    g.pop("group")
    return g


def delete_groups(c, group):
    r = c.call(42, 1, arr([s16(group)]))
    r.i32()
    return {"errors": r.array(lambda: (r.str(), r.i16())[1])}


def offset_delete(c, group, topic, parts):
    r = c.call(47, 0, s16(group) + arr([s16(topic) + arr([struct.pack(">i", p) for p in parts])]))
    out = {"error": r.i16()}
    r.i32()
    out["errors"] = []
    for _ in range(r.i32()):
        r.str()
        out["errors"] += [(r.i32(), r.i16())[1] for _ in range(r.i32())]
    return out


def find_coordinator(c, group):
    r = c.call(10, 2, s16(group) + b"\x00")
    r.i32()
    return {"error": r.i16()}


def ensure_topic(port, topic):
    """Creates `topic` by Metadata auto-creation (both brokers allow it) and
    waits until every partition has a leader."""
    for _ in range(100):
        c = Conn(port)
        try:
            r = c.call(3, 4, arr([s16(topic)]) + b"\x01")
            r.i32()
            r.array(lambda: (r.i32(), r.str(), r.i32(), r.str()))
            r.str()
            r.i32()
            topics = r.array(lambda: (r.i16(), r.str(), r.i8(),
                                      r.array(lambda: (r.i16(), r.i32(), r.i32(), r.array(r.i32),
                                                       r.array(r.i32)))))
            err, _, _, parts = topics[0]
            if err == 0 and len(parts) == PARTITIONS and all(p[0] == 0 for p in parts):
                return
        finally:
            c.close()
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} not ready")


# ---------------------------------------------------------------------------
# Part 1: error codes in scripted sequences


def scenario(port, tag):
    """Runs the scripted sequence; returns [(step, normalised answer)]."""
    g = f"errs-{tag}"
    out = []

    def step(name, answer, **keep):
        out.append((name, answer))
        return answer

    c1, c2, c3 = Conn(port), Conn(port), Conn(port)
    try:
        step("find coordinator", find_coordinator(c1, g))
        # As a client does: retry until the coordinator is there and loaded.
        wait_for(lambda: find_coordinator(c1, g)["error"] == 0 and describe(c1, g)["error"] == 0, 60,
                 "the group coordinator")
        ensure_topic(port, "gt")
        # KIP-394 handshake.
        a = join(c1, g)
        step("join without id", {"error": a["error"], "has_id": bool(a["member"])})
        m1 = a["member"]
        step("join bad session timeout", {"error": join(c2, g, session=10)["error"]})
        step("join unknown member, no group", {"error": join(c2, g + "-none", member="nobody")["error"]})
        a = join(c1, g, member=m1)
        step("join with id", {"error": a["error"], "generation": a["generation"], "leader": a["leader"] == m1,
                              "members": len(a["members"]), "protocol": a["protocol"]})
        gen = a["generation"]
        step("sync stale generation", sync(c1, g, gen + 1, m1))
        step("sync unknown member", sync(c1, g, gen, "nobody"))
        asg = struct.pack(">h", 0) + arr([s16("gt") + arr([struct.pack(">i", p) for p in range(12)])]) + b32(b"")
        s = sync(c1, g, gen, m1, assignments=[(m1, asg)])
        step("sync as leader", {"error": s["error"], "assignment": s["assignment"] == asg})
        step("heartbeat", heartbeat(c1, g, gen, m1))
        step("heartbeat stale generation", heartbeat(c1, g, gen - 1, m1))
        step("heartbeat unknown member", heartbeat(c1, g, gen, "nobody"))
        step("heartbeat unknown group", heartbeat(c1, g + "-none", 1, "nobody"))
        step("commit", commit(c1, g, gen, m1, [("gt", 0, 5), ("gt", 1, 7)], metadata="meta-1"))
        step("commit stale generation", commit(c1, g, gen + 5, m1, [("gt", 0, 6)]))
        step("commit unknown member", commit(c1, g, gen, "nobody", [("gt", 0, 6)]))
        step("commit outside group while stable", commit(c1, g, -1, "", [("gt", 0, 6)]))
        step("commit unknown topic", commit(c1, g, gen, m1, [("gt-never", 0, 1)]))
        step("commit metadata too large", commit(c1, g, gen, m1, [("gt", 2, 1)], metadata="x" * 5000))
        step("commit to missing group with generation", commit(c1, g + "-none", 3, "m", [("gt", 0, 1)]))
        step("fetch committed", fetch_offsets(c1, g, "gt", [0, 1, 2]))
        step("join other protocol type", {"error": join(c2, g, ptype="connect")["error"]})
        step("describe stable", describe(c1, g))
        step("delete non-empty", delete_groups(c1, g))
        step("offset delete subscribed", offset_delete(c1, g, "gt", [0]))
        # A second member joins: the group rebalances.
        b = join(c2, g)
        m2 = b["member"]
        res = {}

        def rejoin2():
            res["b"] = join(c2, g, member=m2)

        t = threading.Thread(target=rejoin2)
        t.start()
        time.sleep(0.5)
        step("heartbeat during rebalance", heartbeat(c1, g, gen, m1))
        step("commit during rebalance", commit(c1, g, gen, m1, [("gt", 0, 8)]))
        a = join(c1, g, member=m1)
        t.join()
        step("rejoin generation", {"error": a["error"], "next": a["generation"] == gen + 1,
                                   "members": len(a["members"]) + len(res["b"]["members"])})
        gen2 = a["generation"]
        leader = a["leader"]
        follower_conn, follower = (c2, m2) if leader == m1 else (c1, m1)
        step("commit while completing", commit(follower_conn, g, gen2, follower, [("gt", 0, 9)]))
        step("describe completing", describe(c3, g))
        step("leave unknown member", leave(c3, g, [("nobody", None)]))
        step("leave", leave(c3, g, [(m1, None), (m2, None)]))
        step("describe after leave", describe(c3, g))
        step("commit outside group when empty", commit(c3, g, -1, "", [("gt", 3, 11)]))
        step("offset delete", offset_delete(c3, g, "gt", [3]))
        step("fetch after delete", fetch_offsets(c3, g, "gt", [0, 3]))
        step("delete group", delete_groups(c3, g))
        step("delete unknown group", delete_groups(c3, g))
        step("describe unknown group", describe(c3, g + "-none"))
        step("offset delete unknown group", offset_delete(c3, g + "-none", "gt", [0]))
        step("fetch unknown group", fetch_offsets(c3, g + "-none", "gt", [0]))
        # Static membership: a restart with the same instance id fences the old id.
        sg = g + "-static"
        s1 = join(c1, sg, instance="inst-1")
        step("static join (no handshake)", {"error": s1["error"], "leader": s1["leader"] == s1["member"]})
        sync(c1, sg, s1["generation"], s1["member"], instance="inst-1",
             assignments=[(s1["member"], asg)])
        s2 = join(c2, sg, instance="inst-1")
        step("static rejoin with a new id", {"error": s2["error"], "new_id": s2["member"] != s1["member"],
                                             "same_generation": s2["generation"] == s1["generation"]})
        step("fenced old id heartbeat", heartbeat(c1, sg, s1["generation"], s1["member"], instance="inst-1"))
        step("fenced old id commit", commit(c1, sg, s1["generation"], s1["member"], [("gt", 0, 1)],
                                            instance="inst-1"))
        step("static leave with wrong id", leave(c3, sg, [(s1["member"], "inst-1")]))
        step("static leave", leave(c3, sg, [(s2["member"], "inst-1")]))
    finally:
        for c in (c1, c2, c3):
            c.close()
    return out


def part_errors(fjord, kafka):
    tag = str(int(time.time()))
    want = scenario(kafka.port, tag)
    got = scenario(fjord.port, tag)
    bad = 0
    for (name, k), (_, f) in zip(want, got):
        if k != f:
            bad += 1
            log(f"  MISMATCH {name}: kafka {k} fjord {f}")
    log(f"errors: {len(want) - bad}/{len(want)} steps answer as Kafka does")
    return bad == 0


# ---------------------------------------------------------------------------
# Part: how soon a classic rebalance completes (issue 18 items 5 and 6)


def subscription(*topics):
    return struct.pack(">h", 0) + arr([s16(t) for t in topics]) + b32(b"")  # ConsumerProtocolSubscription v0


FAST_S = 1.0  # "answered at once": Kafka takes milliseconds; a timer tick takes seconds
CLIENT_S = 3.0  # a real client's subscription change, metadata refreshes included
HELD_S = (5.0, 9.0)  # held until an id handed out with session timeout 6 s expires


def scenario_rejoin(port, tag):
    """Scripted joins whose answers must come as soon as every known member
    has joined (Kafka's GroupMetadataManager), never at the next session or
    rebalance deadline (30 s here). Returns [(step, answer, seconds)]."""
    g = f"rejoin-{tag}"
    out = []
    sub1, sub2 = subscription("gt"), subscription("gt", "gt2")

    def timed(name, fn, shape):
        t0 = time.monotonic()
        a = fn()
        out.append((name, shape(a), time.monotonic() - t0))
        return a

    def jshape(a, base):
        return {"error": a["error"], "generation": a["generation"] - base if a["error"] == 0 else None,
                "members": len(a["members"])}

    kw = {"session": 30000, "rebalance": 30000}
    c1, c2, c3 = Conn(port), Conn(port), Conn(port)
    try:
        wait_for(lambda: find_coordinator(c1, g)["error"] == 0 and describe(c1, g)["error"] == 0, 60,
                 "the group coordinator")
        ensure_topic(port, "gt")
        # Item 5: the first id handed out is discarded; the join with the
        # second must not wait for the first to expire (the initial
        # rebalance ends with its delay, 0 here). That id stays pending for
        # its session timeout and would hold that group's next rebalance
        # (the last step), so the steps after this use another group.
        x = join(c1, g + "-discarded", **kw)
        y = join(c1, g + "-discarded", **kw)
        assert x["error"] == 79 and y["error"] == 79 and x["member"] != y["member"], (x, y)
        timed("join with the second id (first discarded)",
              lambda: join(c1, g + "-discarded", member=y["member"], **kw), lambda a: jshape(a, 0))
        m = join(c1, g, **kw)["member"]
        a = join(c1, g, member=m, **kw)
        base = a["generation"]
        sync(c1, g, base, m, assignments=[(m, b"")])
        # Item 6: a lone leader rejoins a Stable group.
        a = timed("lone leader rejoins Stable", lambda: join(c1, g, member=m, **kw), lambda a: jshape(a, base))
        # ... and, in CompletingRebalance, with another subscription.
        timed("lone member rejoins CompletingRebalance, new metadata",
              lambda: join(c1, g, member=m, protocols=(("range", sub2),), **kw), lambda a: jshape(a, base))
        a = timed("lone member rejoins CompletingRebalance, same metadata",
                  lambda: join(c1, g, member=m, protocols=(("range", sub2),), **kw), lambda a: jshape(a, base))
        sync(c1, g, a["generation"], m, assignments=[(m, b"")])
        # Two members: the follower joins; the leader hears of the rebalance
        # in a heartbeat and rejoins; both answers come with the last join.
        z = join(c2, g, **kw)["member"]
        res = {}
        t = threading.Thread(target=lambda: res.update(z=join(c2, g, member=z, **kw)))
        t.start()
        wait_for(lambda: heartbeat(c1, g, a["generation"], m)["error"] == 27, 10, "REBALANCE_IN_PROGRESS")
        timed("leader rejoins after a new member", lambda: join(c1, g, member=m, protocols=(("range", sub2),), **kw),
              lambda a: jshape(a, base))
        t.join(10)
        out.append(("new member's answer", jshape(res["z"], base), 0.0))
        gen = res["z"]["generation"]
        s = sync(c1, g, gen, m, assignments=[(m, b""), (z, b"")])
        assert s["error"] == 0 and sync(c2, g, gen, z)["error"] == 0, s
        # The follower's subscription changes in Stable; the leader rejoins.
        t = threading.Thread(target=lambda: res.update(z=join(c2, g, member=z, protocols=(("range", sub2),), **kw)))
        t.start()
        wait_for(lambda: heartbeat(c1, g, gen, m)["error"] == 27, 10, "REBALANCE_IN_PROGRESS")
        timed("leader rejoins after a follower's new metadata",
              lambda: join(c1, g, member=m, protocols=(("range", sub2),), **kw), lambda a: jshape(a, base))
        t.join(10)
        out.append(("follower's answer", jshape(res["z"], base), 0.0))
        gen = res["z"]["generation"]
        sync(c1, g, gen, m, assignments=[(m, b""), (z, b"")])
        sync(c2, g, gen, z)
        # The leader leaves; the follower alone rejoins at once.
        timed("leader leaves", lambda: leave(c3, g, [(m, None)]), lambda a: a)
        timed("remaining member rejoins", lambda: join(c2, g, member=z, protocols=(("range", sub2),), **kw),
              lambda a: jshape(a, base))
        out.append(("describe", describe(c3, g), 0.0))
        # The last member leaves: the group is Empty at once.
        timed("last member leaves", lambda: leave(c3, g, [(z, None)]), lambda a: a)
        out.append(("describe after the last leave", describe(c3, g), 0.0))
        # A pending id does hold a rebalance of a group that has members
        # (Kafka: pending members count until they expire, session 6 s).
        g2 = g + "-pending"
        p = join(c1, g2, **kw)["member"]
        a = join(c1, g2, member=p, **kw)
        sync(c1, g2, a["generation"], p, assignments=[(p, b"")])
        assert join(c2, g2, session=6000, rebalance=6000)["error"] == 79  # discarded
        timed("leader rejoins while an id handed out is pending",
              lambda: join(c1, g2, member=p, **kw), lambda a: jshape(a, a["generation"] - 1))
    finally:
        for c in (c1, c2, c3):
            c.close()
    return out


def rejoin_clients(broker, tag):
    """A lone consumer of each client changes its subscription twice; the
    seconds from each subscribe() to the assignment that covers it. The
    first subscription is replaced at once, while its first JoinGroup is
    out (librdkafka then discards the id MEMBER_ID_REQUIRED handed out and
    asks for another)."""
    topics = [f"rj-{tag}-{i}" for i in range(3)]
    for t in topics:
        ensure_topic(broker.port, t)
    out = {}
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"rj-ck-{tag}", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500, "log_level": 2, "auto.offset.reset": "earliest"})
    try:
        times = []
        c.subscribe(topics[:1])
        for n in (2, 3):
            t0 = time.monotonic()
            c.subscribe(topics[:n])
            deadline = t0 + 60
            while {tp.topic for tp in c.assignment()} != set(topics[:n]) and time.monotonic() < deadline:
                c.poll(0.01)
            times.append(time.monotonic() - t0)
        out["confluent-kafka"] = times
    finally:
        c.close()
    try:
        import kafka
    except ImportError:
        return out
    k = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=f"rj-kp-{tag}", session_timeout_ms=6000,
                            heartbeat_interval_ms=500)
    try:
        times = []
        for n in (1, 2, 3):
            t0 = time.monotonic()
            k.subscribe(topics[:n])
            deadline = t0 + 60
            while {tp.topic for tp in k.assignment()} != set(topics[:n]) and time.monotonic() < deadline:
                k.poll(200)  # shorter polls starve kafka-python's own loop: it then never syncs
            times.append(time.monotonic() - t0)
        out["kafka-python"] = times[1:]  # the first is the group's creation
    finally:
        k.close()
    return out


def part_rejoin(fjord, kafka):
    tag = str(int(time.time()))
    want = scenario_rejoin(kafka.port, tag)
    got = scenario_rejoin(fjord.port, tag)
    bad = 0
    for (name, k, kt), (_, f, ft) in zip(want, got):
        held = "pending" in name
        fast = (lambda t: HELD_S[0] <= t <= HELD_S[1]) if held else (lambda t: t < FAST_S)
        ok = k == f and fast(ft) and fast(kt)
        log(f"  {'ok' if ok else 'MISMATCH'} {name}: kafka {kt * 1000:.0f} ms, fjord {ft * 1000:.0f} ms"
            + ("" if k == f else f": kafka {k} fjord {f}"))
        bad += not ok
    log(f"rejoin: {len(want) - bad}/{len(want)} steps answer as Kafka does, as soon as Kafka does")
    # Real clients: each subscription change is assigned within 3 s (Kafka:
    # librdkafka in tens of milliseconds; kafka-python in up to 1 s, as it
    # rejoins once more when the new topic's metadata arrives).
    k, f = rejoin_clients(kafka, tag), rejoin_clients(fjord, tag)
    for client in f:
        ok = all(t < CLIENT_S for t in f[client])
        log(f"  {'ok' if ok else 'SLOW'} {client}: a lone consumer's subscription changes assigned in "
            f"kafka {[round(t * 1000) for t in k.get(client, [])]} ms, fjord {[round(t * 1000) for t in f[client]]} ms")
        bad += not ok
    return bad == 0


# ---------------------------------------------------------------------------
# Part 2: Kafka's tools


def tool(cls, *args):
    out = subprocess.run([KAFKA_REF, "run-class", cls, *args], capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout + out.stderr


def describe_rows(bootstrap, group):
    rc, out = tool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", bootstrap,
                   "--describe", "--group", group)
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == group and f[2].isdigit():
            rows[int(f[2])] = (f[3], f[4], f[5])  # CURRENT-OFFSET LOG-END-OFFSET LAG
    return rc, rows, out


def workload(broker, topic, group):
    from confluent_kafka import Consumer, Producer, TopicPartition
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for part in range(PARTITIONS):
        for i in range(10):
            p.produce(topic, value=b"v%d" % i, partition=part)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    offs = [TopicPartition(topic, part, part % 11) for part in range(PARTITIONS) if part != 5]
    c.commit(offsets=offs, asynchronous=False)
    c.close()


def java_partition(group, partitions=50):
    """Kafka's choice of __consumer_offsets partition (String.hashCode, ASCII ids)."""
    h = 0
    for ch in group:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def dump_offsets(fjord, group):
    """Kafka's DumpLogSegments --offsets-decoder over the partition Kafka
    would pick for `group` in Fjord's log dir: each partition's commits."""
    part_dir = os.path.join(fjord.dir, "data", f"__consumer_offsets-{java_partition(group)}")
    seg = os.path.join(part_dir, "00000000000000000000.log")
    rc, out = tool("org.apache.kafka.tools.DumpLogSegments", "--offsets-decoder", "--files", seg)
    found = {}
    for m in re.finditer(r'"group":"([^"]+)","topic":"[^"]+","partition":(\d+)\}\} payload: '
                         r'\{"version":"\d+","data":\{"offset":(\d+)', out):
        if m.group(1) == group:
            found.setdefault(int(m.group(2)), []).append(int(m.group(3)))
    return rc, found, out


def part_tools(fjord, kafka):
    ok = True
    tag = str(int(time.time()))
    topic, group = f"tools-{tag}", f"tools-g-{tag}"
    results = {}
    for b in (kafka, fjord):
        ensure_topic(b.port, topic)
        workload(b, topic, group)
        rc, rows, out = describe_rows(b.bootstrap, group)
        results[b.name] = rows
        if rc != 0 or len(rows) != PARTITIONS - 1:
            log(f"  {b.name}: kafka-consumer-groups --describe failed ({rc}):\n{out}")
            ok = False
    if results["kafka"] != results["fjord"]:
        log(f"  describe differs:\n    kafka {results['kafka']}\n    fjord {results['fjord']}")
        ok = False
    else:
        log(f"tools: --describe equal on both ({len(results['fjord'])} partitions, "
            f"e.g. partition 3: CURRENT-OFFSET/LOG-END-OFFSET/LAG {results['fjord'].get(3)})")
    for b in (kafka, fjord):
        rc, out = tool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server",
                       b.bootstrap, "--reset-offsets", "--to-earliest", "--execute", "--group", group, "--topic",
                       topic)
        rc2, rows, out2 = describe_rows(b.bootstrap, group)
        if rc != 0 or len(rows) != PARTITIONS or any(r[0] != "0" or r[2] != "10" for r in rows.values()):
            log(f"  {b.name}: --reset-offsets --to-earliest did not reset ({rc}):\n{out}\n{out2}")
            ok = False
    log("tools: --reset-offsets --to-earliest reset every partition to 0 on both")
    # Fjord's __consumer_offsets is Kafka's layout, in the partition Kafka picks.
    rc, found, out = dump_offsets(fjord, group)
    # The workload's commits, then the reset's zeros.
    want = {p: ([p % 11] if p != 5 else []) + [0] for p in range(PARTITIONS)}
    if rc != 0 or found != want:
        log(f"  DumpLogSegments --offsets-decoder on Fjord's __consumer_offsets: {found}, want {want}:\n{out[-2000:]}")
        ok = False
    else:
        log(f"tools: Kafka's DumpLogSegments --offsets-decoder reads Fjord's commits of {group} in "
            f"__consumer_offsets-{java_partition(group)}")
    # The Java consumer (classic protocol) reads the topic with a group.
    for b in (kafka, fjord):
        cg = group + "-java"
        rc, out = tool("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", b.bootstrap,
                       "--topic", topic, "--group", cg, "--from-beginning", "--max-messages",
                       str(PARTITIONS * 10), "--timeout-ms", "60000")
        n = len([ln for ln in out.splitlines() if re.fullmatch(r"v\d", ln)])
        rc2, rows, out2 = describe_rows(b.bootstrap, cg)
        lag0 = len(rows) == PARTITIONS and all(r[2] == "0" and r[0] == "10" for r in rows.values())
        if rc != 0 or n != PARTITIONS * 10 or not lag0:
            log(f"  {b.name}: Java console consumer with a group read {n} records, lag 0: {lag0}:\n{out[-2000:]}"
                f"\n{out2}")
            ok = False
    if ok:
        log("tools: the Java consumer (classic group protocol) read every record and committed: LAG 0 on both")
    return ok


# ---------------------------------------------------------------------------
# Part: the consumer group protocol (KIP-848)


def scenario_848(port, tag):
    """Answers that do not depend on timing: error codes of each step, and
    where two members end up. (Kafka 4.4 computes target assignments
    asynchronously, so intermediate epochs and partition counts differ by
    design and are not compared.)"""
    g = f"kip848-{tag}"
    out = []

    def step(name, answer):
        out.append((name, answer))
        return answer

    c = Conn(port)
    try:
        wait_for(lambda: find_coordinator(c, g)["error"] == 0 and describe(c, g)["error"] == 0, 60,
                 "the group coordinator")
        ensure_topic(port, "gt")
        tid = topic_ids(port, "gt")
        step("empty group id", {"error": cg_heartbeat(c, "", "m", 0, topics=["gt"])["error"]})
        step("empty member id (v1)", {"error": cg_heartbeat(c, g, "", 0, topics=["gt"])["error"]})
        step("join without rebalance timeout", {"error": cg_heartbeat(c, g, "m1", 0, topics=["gt"],
                                                                      rebalance=-1)["error"]})
        step("join without subscription", {"error": cg_heartbeat(c, g, "m1", 0)["error"]})
        step("unknown assignor", {"error": cg_heartbeat(c, g, "m1", 0, topics=["gt"], assignor="sticky")["error"]})
        step("invalid regex", {"error": cg_heartbeat(c, g, "m1", 0, regex="(")["error"]})
        step("bad epoch", {"error": cg_heartbeat(c, g, "m1", -5, topics=["gt"])["error"]})
        step("unknown member, no group", {"error": cg_heartbeat(c, g + "-none", "m9", 3, topics=["gt"])["error"]})
        a = cg_heartbeat(c, g, "m1", 0, topics=["gt"], owned=[])
        step("join m1", {"error": a["error"], "assigned": a["assignment"] is not None})
        state = {"m1": (a["epoch"], a["assignment"] or []), "m2": None}
        step("epoch from the future", {"error": cg_heartbeat(c, g, "m1", a["epoch"] + 5)["error"]})
        step("unknown member of the group", {"error": cg_heartbeat(c, g, "m7", 1)["error"]})
        b = cg_heartbeat(c, g, "m2", 0, topics=["gt"], owned=[])
        step("join m2", {"error": b["error"]})
        state["m2"] = (b["epoch"], b["assignment"] or [])

        # Both heartbeat as clients do (owning what they were given) until
        # they split the 12 partitions.
        def converge():
            for m in ("m1", "m2"):
                epoch, owned = state[m]
                r = cg_heartbeat(c, g, m, epoch, owned=owned, tid=tid)
                assert r["error"] == 0, f"{m}: heartbeat error {r}"
                state[m] = (r["epoch"], r["assignment"] if r["assignment"] is not None else owned)
            a1, a2 = set(state["m1"][1]), set(state["m2"][1])
            return len(a1) == 6 and len(a2) == 6 and not (a1 & a2)

        deadline = time.monotonic() + 30
        while not converge():
            assert time.monotonic() < deadline, f"no convergence: {state}"
            time.sleep(0.1)
        d = cg_describe(c, g)
        step("converged: 6 partitions each, disjoint", {
            "error": d["error"], "state": d["state"],
            "members": sorted((m["id"], len(m["assigned"]), len(m["target"])) for m in d["members"]),
            "epochs equal": len({m["epoch"] for m in d["members"]} | {d["assignment_epoch"]}) == 1})
        step("stale epoch", {"error": cg_heartbeat(c, g, "m1", state["m1"][0] - 1, owned=list(range(12)),
                                                   tid=tid)["error"]})
        step("describe unknown", {"error": cg_describe(c, g + "-none")["error"]})
        step("classic describe of a consumer group", {"error": describe(c, g)["error"]})
        step("classic join to a consumer group", {"error": join(c, g)["error"]})
        step("m1 leaves", {"error": cg_heartbeat(c, g, "m1", -1)["error"]})
        step("m1 after leaving", {"error": cg_heartbeat(c, g, "m1", state["m1"][0])["error"]})
        step("delete non-empty consumer group", delete_groups(c, g))
        step("m2 leaves", {"error": cg_heartbeat(c, g, "m2", -1)["error"]})
        step("list after", {"groups": [x for x in list_groups_v2(c) if x[0] == g]})
        step("delete empty consumer group", delete_groups(c, g))
        # An empty classic group (here: offsets committed from outside) switches.
        g2 = g + "-switch"
        step("classic commit", commit(c, g2, -1, "", [("gt", 0, 42)]))
        r = cg_heartbeat(c, g2, "s1", 0, topics=["gt"], owned=[])
        step("consumer join of an empty classic group", {"error": r["error"]})
        step("offsets kept across the switch", fetch_offsets(c, g2, "gt", [0]))
        step("leave", {"error": cg_heartbeat(c, g2, "s1", -1)["error"]})
        step("leave again", {"error": cg_heartbeat(c, g2, "s1", -1)["error"]})
        step("leave unknown group", {"error": cg_heartbeat(c, g2 + "-none", "s1", -1)["error"]})
    finally:
        c.close()
    return out


# Where Fjord answers differently on purpose (docs/compatibility.md):
KNOWN_848_DIFFERENCES = {
    # Kafka lets classic members join a consumer group (online migration);
    # Fjord does not yet.
    "classic join to a consumer group": ({"error": 79}, {"error": 23}),
}


def list_groups_v2(c):
    r = c.call(16, 2, b"")
    r.i32()
    r.i16()
    return r.array(lambda: (r.str(), r.str()))


def part_kip848(fjord, kafka):
    tag = str(int(time.time()))
    want = scenario_848(kafka.port, tag)
    got = scenario_848(fjord.port, tag)
    bad = known = 0
    for (name, k), (_, f) in zip(want, got):
        if k != f:
            if KNOWN_848_DIFFERENCES.get(name) == (k, f):
                known += 1
                log(f"  known difference {name}: kafka {k} fjord {f}")
                continue
            bad += 1
            log(f"  MISMATCH {name}: kafka {k} fjord {f}")
    log(f"kip848: {len(want) - bad - known}/{len(want)} ConsumerGroupHeartbeat/Describe steps answer as Kafka "
        f"does, {known} known differences, {bad} mismatches")
    ok = bad == 0
    # Fjord's records of a consumer group are Kafka's: DumpLogSegments decodes them.
    group = f"kip848-{tag}"
    seg = os.path.join(fjord.dir, "data", f"__consumer_offsets-{java_partition(group)}", "00000000000000000000.log")
    rc, out = tool("org.apache.kafka.tools.DumpLogSegments", "--offsets-decoder", "--files", seg)
    kinds = set(re.findall(r'key: \{"type":"(\d+)","data":\{"groupId":"' + re.escape(group) + '"', out))
    if rc != 0 or not {"3", "5", "6", "7", "8"} <= kinds or "Exception" in out:
        log(f"  DumpLogSegments on Fjord's consumer group records: types {sorted(kinds)}:\n{out[-3000:]}")
        ok = False
    else:
        log(f"kip848: Kafka's DumpLogSegments decodes Fjord's consumer group records (types {sorted(kinds)})")
    # The Java consumer with group.protocol=consumer, on both brokers.
    topic = f"k848-java-{tag}"
    for b in (kafka, fjord):
        ensure_topic(b.port, topic)
        produce(b.bootstrap, topic, [b"v%d" % (i % 10) for i in range(PARTITIONS * 10)])
        cg = f"k848-java-g-{tag}"
        rc, out = tool("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", b.bootstrap,
                       "--topic", topic, "--group", cg, "--from-beginning", "--max-messages",
                       str(PARTITIONS * 10), "--timeout-ms", "60000", "--consumer-property",
                       "group.protocol=consumer")
        n = len([ln for ln in out.splitlines() if re.fullmatch(r"v\d", ln)])
        rc2, rows, out2 = describe_rows(b.bootstrap, cg)
        lag0 = len(rows) == PARTITIONS and all(r[2] == "0" for r in rows.values())
        if rc != 0 or n != PARTITIONS * 10 or not lag0:
            log(f"  {b.name}: Java consumer (group.protocol=consumer) read {n}, lag 0: {lag0}:\n{out[-2000:]}\n{out2}")
            ok = False
    if ok:
        log("kip848: the Java consumer with group.protocol=consumer read every record and committed (LAG 0) on both")
    return ok


# ---------------------------------------------------------------------------
# Part 3: librdkafka and kafka-python consumers on Fjord


class Member:
    """A confluent-kafka consumer polled on its own thread, tracking its
    assignment (eager or incremental) and every record it reads."""

    def __init__(self, bootstrap, group, topic, strategy, extra=None, commit_each=True):
        from confluent_kafka import Consumer
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "log_level": 2}  # the restarts' reconnects are expected
        if strategy == "consumer-protocol":  # KIP-848: the broker assigns
            conf["group.protocol"] = "consumer"
        else:
            conf.update({"partition.assignment.strategy": strategy, "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 500})
        conf.update(extra or {})
        self.c = Consumer(conf)
        self.owned = set()
        self.assigns = 0
        self.records = []
        self.lock = threading.Lock()
        self.commit_each = commit_each
        self.stop = threading.Event()
        self.c.subscribe([topic] if isinstance(topic, str) else topic, on_assign=self._assign,
                         on_revoke=self._revoke)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _assign(self, c, parts):
        with self.lock:
            self.assigns += 1
            self.owned |= {p.partition for p in parts}

    def _revoke(self, c, parts):
        with self.lock:
            self.owned -= {p.partition for p in parts}

    def _lost(self, c, parts):
        self._revoke(c, parts)

    def _run(self):
        while not self.stop.is_set():
            m = self.c.poll(0.2)
            if m is None or m.error():
                continue
            with self.lock:
                self.records.append(m.value())
            if self.commit_each:
                try:
                    self.c.commit(message=m, asynchronous=False)
                except Exception as e:  # a rebalance may cut a commit short; the record is re-read
                    log(f"    commit failed: {e}")
        self.c.close()

    def close(self):
        self.stop.set()
        self.t.join(30)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def owned_exactly_once(members, n=PARTITIONS):
    sets = [m.owned for m in members]
    union = set().union(*sets)
    return union == set(range(n)) and sum(len(s) for s in sets) == n


def produce(bootstrap, topic, values):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for v in values:
        p.produce(topic, value=v)
    assert p.flush(30) == 0


def clients_assignors(fjord, tag, strategies=("range", "roundrobin", "cooperative-sticky")):
    for strategy in strategies:
        topic, group = f"asg-{strategy}-{tag}", f"asg-{strategy}-{tag}"
        ensure_topic(fjord.port, topic)
        members = [Member(fjord.bootstrap, group, topic, strategy) for _ in range(3)]
        wait_for(lambda: all(m.owned for m in members) and owned_exactly_once(members), 60,
                 f"{strategy}: 3 members owning 12 partitions")
        first = [f"a{i}".encode() for i in range(600)]
        produce(fjord.bootstrap, topic, first)
        wait_for(lambda: sum(len(m.records) for m in members) >= 600, 60, f"{strategy}: 600 records")
        members[0].close()
        rest = members[1:]
        wait_for(lambda: owned_exactly_once(rest), 30, f"{strategy}: 2 members owning 12 partitions")
        second = [f"b{i}".encode() for i in range(600)]
        produce(fjord.bootstrap, topic, second)
        wait_for(lambda: len({v for m in members for v in m.records}) >= 1200, 60, f"{strategy}: 1200 records")
        time.sleep(1)
        for m in rest:
            m.close()
        seen = [v for m in members for v in m.records]
        dupes = len(seen) - len(set(seen))
        assert set(seen) == set(first + second), f"{strategy}: records missing"
        assert dupes == 0, f"{strategy}: {dupes} records read twice after clean commits"
        log(f"clients: {strategy}: 12 partitions owned exactly once by 3 then 2 members; 1200 records read once")


CHILD = r"""
import sys, time, json
from confluent_kafka import Consumer
bootstrap, group, topic, instance = sys.argv[1:5]
conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
if instance != "-":
    conf["group.instance.id"] = instance
c = Consumer(conf)
def on_assign(c, parts):
    print(json.dumps(sorted(p.partition for p in parts)), flush=True)
c.subscribe([topic], on_assign=on_assign)
while True:
    c.poll(0.2)
"""


def child(bootstrap, group, topic, instance="-"):
    p = subprocess.Popen([sys.executable, "-c", CHILD, bootstrap, group, topic, instance], stdout=subprocess.PIPE,
                         text=True)
    return p


def read_assignment(p, timeout=60):
    result = []

    def rd():
        result.append(json.loads(p.stdout.readline()))

    t = threading.Thread(target=rd, daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        raise AssertionError("child consumer got no assignment")
    return result[0]


def clients_regex(fjord, tag):
    """KIP-848 regex subscription: a topic created later that matches joins
    the assignment."""
    group = f"rx-{tag}"
    ensure_topic(fjord.port, f"rx-{tag}-a")
    m = Member(fjord.bootstrap, group, [f"^rx-{tag}-.*"], "consumer-protocol", commit_each=False)
    try:
        wait_for(lambda: len(m.owned) == PARTITIONS, 60, "the regex member owning the first topic")
        ensure_topic(fjord.port, f"rx-{tag}-b")
        produce(fjord.bootstrap, f"rx-{tag}-b", [b"late"] * 20)
        wait_for(lambda: b"late" in m.records, 60, "records of a topic created after the subscription")
        log("clients: consumer protocol: a regex subscription picked up a topic created later")
    finally:
        m.close()


def clients_848_restart(fjord, tag):
    """KIP-848 membership survives a broker restart: the member keeps its
    epoch and partitions (no revocation, no new assignment) and reads on."""
    topic, group = f"r848-{tag}", f"r848-{tag}"
    ensure_topic(fjord.port, topic)
    m = Member(fjord.bootstrap, group, topic, "consumer-protocol", commit_each=False)
    try:
        wait_for(lambda: len(m.owned) == PARTITIONS, 60, "the member owning 12 partitions")
        time.sleep(1)
        assigns = m.assigns
        for how in (signal.SIGTERM, signal.SIGKILL):
            fjord.stop(how)
            fjord.start()
            produce(fjord.bootstrap, topic, [b"after-" + how.name.encode()] * 24)
            wait_for(lambda: b"after-" + how.name.encode() in m.records, 60, f"records after a {how.name} restart")
            time.sleep(2)
            assert m.assigns == assigns and len(m.owned) == PARTITIONS, \
                f"after {how.name}: assignments {m.assigns} (was {assigns}), owned {sorted(m.owned)}"
        log("clients: consumer protocol: a member keeps its partitions across a broker SIGTERM and SIGKILL "
            "(membership replayed from __consumer_offsets)")
    finally:
        m.close()


def clients_kill(fjord, tag):
    topic, group = f"kill-{tag}", f"kill-{tag}"
    ensure_topic(fjord.port, topic)
    a = Member(fjord.bootstrap, group, topic, "range", commit_each=False)
    p = child(fjord.bootstrap, group, topic)
    try:
        wait_for(lambda: len(a.owned) == PARTITIONS // 2, 60, "the partitions split between two members")
        read_assignment(p)
        t0 = time.monotonic()
        p.send_signal(signal.SIGKILL)
        p.wait()
        wait_for(lambda: len(a.owned) == PARTITIONS, 20, "the killed member's partitions to move")
        took = time.monotonic() - t0
        assert took < 6 + 3, f"partitions moved after {took:.1f}s (session timeout 6s)"
        log(f"clients: a SIGKILLed member's partitions moved in {took:.1f}s (session.timeout.ms=6000)")
    finally:
        if p.poll() is None:
            p.kill()
        a.close()


def clients_static(fjord, tag):
    topic, group = f"static-{tag}", f"static-{tag}"
    ensure_topic(fjord.port, topic)
    a = Member(fjord.bootstrap, group, topic, "range", commit_each=False)
    p = child(fjord.bootstrap, group, topic, "static-b")
    try:
        wait_for(lambda: len(a.owned) == PARTITIONS // 2, 60, "the partitions split between two members")
        before = read_assignment(p)
        assigns = a.assigns
        owned = set(a.owned)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p = child(fjord.bootstrap, group, topic, "static-b")
        after = read_assignment(p)
        time.sleep(3)
        assert after == before, f"static member came back with {after}, had {before}"
        assert a.assigns == assigns and a.owned == owned, "the other member was rebalanced"
        log(f"clients: a static member restarted with its partitions {after} and no rebalance")
    finally:
        if p.poll() is None:
            p.kill()
        a.close()


def clients_restart(fjord, tag):
    from confluent_kafka import Consumer, TopicPartition
    topic, group = f"restart-{tag}", f"restart-{tag}"
    ensure_topic(fjord.port, topic)
    produce(fjord.bootstrap, topic, [b"x"] * 100)
    conf = {"bootstrap.servers": fjord.bootstrap, "group.id": group, "enable.auto.commit": False}
    c = Consumer(conf)
    try:
        offs = [TopicPartition(topic, p, 3 + p, f"meta-{p}") for p in range(PARTITIONS)]
    except TypeError:  # confluent-kafka before 1.8 (Debian's) has no commit metadata
        offs = [TopicPartition(topic, p, 3 + p) for p in range(PARTITIONS)]
    c.commit(offsets=offs, asynchronous=False)
    c.close()
    want = {(tp.partition, tp.offset, getattr(tp, "metadata", None)) for tp in offs}
    for how in (signal.SIGTERM, signal.SIGKILL):
        fjord.stop(how)
        fjord.start()
        c = Consumer(conf)
        got = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                got = {(tp.partition, tp.offset, getattr(tp, "metadata", None))
                       for tp in c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
                if got == want:
                    break
            except Exception:
                pass
            time.sleep(0.2)
        c.close()
        assert got == want, f"after {how.name}: committed {sorted(got or [])}, want {sorted(want)}"
        log(f"clients: committed offsets and metadata of 12 partitions survive a broker {how.name}")


def clients_kafka_python(fjord, tag):
    import kafka
    topic, group = f"kp-{tag}", f"kp-{tag}"
    ensure_topic(fjord.port, topic)
    produce(fjord.bootstrap, topic, [f"k{i}".encode() for i in range(300)])
    seen = []
    owned = []
    lock = threading.Lock()
    stop = threading.Event()

    def run():
        c = kafka.KafkaConsumer(topic, bootstrap_servers=fjord.bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
        while not stop.is_set():
            for tp, msgs in c.poll(200).items():
                with lock:
                    seen.extend(m.value for m in msgs)
            if c.assignment():
                c.commit()
        with lock:
            owned.append({tp.partition for tp in c.assignment()})
        c.close()

    ts = [threading.Thread(target=run) for _ in range(2)]
    for t in ts:
        t.start()
    wait_for(lambda: len(set(seen)) >= 300, 60, "kafka-python: 300 records")
    time.sleep(2)
    stop.set()
    for t in ts:
        t.join(30)
    assert set(seen) == {f"k{i}".encode() for i in range(300)}
    log(f"clients: kafka-python {kafka.__version__}: 2 group members read 300 records "
        f"({len(seen) - len(set(seen))} re-read during the first rebalance)")


def retention_start(fjord, tag):
    """offsets.retention.minutes: commits of an empty group, on a second
    broker with a 1-minute retention (the least Kafka allows) checked every
    second; retention_check() runs after the other client tests."""
    group = f"ret-{tag}"
    other = Fjord(fjord.binary, os.path.dirname(fjord.dir), "fjord-retention",
                  {"offsets.retention.minutes": "1", "offsets.retention.check.interval.ms": "1000"})
    other.start()
    c = Conn(other.port)
    try:
        wait_for(lambda: find_coordinator(c, group)["error"] == 0 and describe(c, group)["error"] == 0, 60,
                 "the coordinator")
        ensure_topic(other.port, "gt")
        assert commit(c, group, -1, "", [("gt", 0, 7), ("gt", 1, 8)])["errors"] == [0, 0]
        assert fetch_offsets(c, group, "gt", [0])["partitions"][0][1] == 7
    finally:
        c.close()
    return other, group, time.monotonic()


def retention_check(other, group, committed_at):
    try:
        c = Conn(other.port)
        try:
            wait_for(lambda: fetch_offsets(c, group, "gt", [0, 1])["partitions"] == [(0, -1, "", 0), (1, -1, "", 0)],
                     90, "the offsets to expire")
            took = time.monotonic() - committed_at
            assert took >= 59, f"offsets expired after {took:.0f}s, before offsets.retention.minutes=1"
            gone = all(g != group for g, _ in list_groups_v2(c))
            assert gone, "the empty group without offsets is still listed"
        finally:
            c.close()
        log(f"clients: an empty group's offsets expired {took:.0f}s after the commit "
            "(offsets.retention.minutes=1), and the group with them")
    finally:
        other.stop()


def part_clients(fjord, with_kafka_python):
    import confluent_kafka
    log(f"clients: confluent-kafka {confluent_kafka.version()[0]}, librdkafka {confluent_kafka.libversion()[0]}")
    tag = str(int(time.time()))
    retention = retention_start(fjord, tag) if with_kafka_python else None
    clients_assignors(fjord, tag)
    if confluent_kafka.libversion()[1] >= 0x020A0000:
        clients_assignors(fjord, tag, ("consumer-protocol",))
        clients_regex(fjord, tag)
        clients_848_restart(fjord, tag)
    else:
        log(f"clients: librdkafka {confluent_kafka.libversion()[0]} predates the consumer group protocol (KIP-848)")
    clients_kill(fjord, tag)
    clients_static(fjord, tag)
    if with_kafka_python:
        clients_kafka_python(fjord, tag)
    clients_restart(fjord, tag)
    if retention:
        retention_check(*retention)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="errors,rejoin,tools,kip848,clients")
    ap.add_argument("--fjord", default=os.environ.get("FJORD_BIN", DEFAULT_FJORD))
    ap.add_argument("--kafka", help="HOST:PORT of a running Kafka 4.4 started with BROKER_CONFIG "
                    "(tests/kafka_ref/kafka-ref start); default: start one. One that has served groups before answers "
                    "the errors part's first FindCoordinator at once (Fjord, fresh: COORDINATOR_NOT_AVAILABLE)")
    ap.add_argument("--librdkafka-only", action="store_true", help="clients: leave out kafka-python")
    args = ap.parse_args()
    parts = args.parts.split(",")
    work = tempfile.mkdtemp(prefix="fjord-groups.")
    fjord = Fjord(args.fjord, work)
    kafka = Kafka(work, args.kafka) if set(parts) & {"errors", "rejoin", "tools", "kip848"} else None
    ok = True
    try:
        fjord.start()
        if kafka:
            kafka.start()
        for part in parts:
            t0 = time.monotonic()
            try:
                if part == "errors":
                    good = part_errors(fjord, kafka)
                elif part == "rejoin":
                    good = part_rejoin(fjord, kafka)
                elif part == "tools":
                    good = part_tools(fjord, kafka)
                elif part == "kip848":
                    good = part_kip848(fjord, kafka)
                else:
                    good = part_clients(fjord, not args.librdkafka_only)
            except Exception as e:
                log(f"{part}: FAILED: {e!r}")
                good = False
            log(f"=== {part}: {'ok' if good else 'FAILED'} in {time.monotonic() - t0:.0f}s")
            ok = ok and good
    finally:
        try:
            fjord.stop()
        except Exception as e:
            log(f"fjord stop: {e}")
            ok = False
        if kafka:
            kafka.stop()
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"logs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
