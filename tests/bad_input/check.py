#!/usr/bin/env python3
"""Bad-input conformance test: Fjord must answer malformed input exactly as
Apache Kafka 4.4 does.

Sends the same hand-built raw bytes (struct.pack, no client library) to the
reference Kafka broker (tests/kafka_ref/kafka-ref) and to Fjord, each case on
a fresh TCP connection, and compares the outcomes: the response frames
decoded at the level that must match (correlation id, error codes at top
level and per topic/partition, which fields and tagged fields are present),
or that the connection was closed with no response bytes, and whether the
connection is still usable afterwards (a probe ApiVersions v0 request).
Broker-specific values (cluster ids, node ids, hosts, ports, throttle times,
topic ids, offsets, timestamps, error message texts) are not compared.

Modes (see README.md):
  check.py                      start Kafka and Fjord, compare them
  check.py --kafka-only         start only Kafka; compare with the saved
                                expectations if present (determinism check)
  check.py --kafka-only --record  ... and save them to kafka-4.4-expected.json
  check.py --expected           start only Fjord, compare with the saved file
  check.py --fjord-only         start only Fjord, print its outcomes
Exit status: 0 when every compared case matches, 1 otherwise, 2 on set-up
failure.
"""

import argparse
import fnmatch
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
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
KAFKA_REF = os.path.join(REPO, "tests", "kafka_ref", "kafka-ref")
EXPECTED_FILE = os.path.join(HERE, "kafka-4.4-expected.json")
DEFAULT_FJORD_BIN = os.path.join(REPO, "build", "release", "src", "app", "fjord")

MAX_REQUEST_BYTES = 1048576          # socket.request.max.bytes on both brokers
CLIENT_ID = "fjord-bad-input"
PROBE_CORR = 0x7ABC0001

# Topics used by the Produce cases.
T_PLAIN = "bi-plain"                 # created by Metadata auto-creation
T_KCAT = "bi-kcat"                   # created by Metadata auto-creation
T_COMPACT = "bi-compact"             # CreateTopics: cleanup.policy=compact
T_SMALL = "bi-small"                 # CreateTopics: max.message.bytes=1024
T_TS = "bi-ts"                       # CreateTopics: timestamp window of 1 hour
T_MISSING = "bi-never-created"
# Same for both brokers within one run, different between runs.
RUN_PRODUCER_ID = 10 ** 9 + int.from_bytes(os.urandom(4), "big")
CONFIGURED_TOPICS = {
    T_COMPACT: {"cleanup.policy": "compact"},
    T_SMALL: {"max.message.bytes": "1024"},
    T_TS: {"message.timestamp.type": "CreateTime",
           "message.timestamp.before.max.ms": "3600000",
           "message.timestamp.after.max.ms": "3600000"},
}

# --------------------------------------------------------------------------
# Encoding helpers


def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def u32(v):
    return struct.pack(">I", v)


def i64(v):
    return struct.pack(">q", v)


def boolean(v):
    return b"\x01" if v else b"\x00"


def uvarint(n):
    if n < 0:
        raise ValueError("uvarint of negative number")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n):       # zigzag, 32 bit
    return uvarint((n << 1) ^ (n >> 31))


def varlong(n):      # zigzag, 64 bit
    return uvarint((n << 1) ^ (n >> 63))


def string(s):
    """Classic STRING / NULLABLE_STRING (int16 length, -1 = null)."""
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def cstring(s):
    """COMPACT_STRING / COMPACT_NULLABLE_STRING (uvarint length+1, 0 = null)."""
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def nbytes(b):
    """Classic BYTES / RECORDS (int32 length, -1 = null)."""
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def cbytes(b):
    if b is None:
        return uvarint(0)
    return uvarint(len(b) + 1) + b


def array(items):
    """Classic ARRAY: items are already-encoded bytes. None = null (-1)."""
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(items)


def carray(items):
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(items)


def tags(fields=None):
    """Tagged-field section: fields is a list of (tag, raw bytes)."""
    fields = fields or []
    out = uvarint(len(fields))
    for tag, data in fields:
        out += uvarint(tag) + uvarint(len(data)) + data
    return out


def header(api_key, version, corr, flexible, client_id=CLIENT_ID):
    """Request header v1 (non-flexible) or v2 (flexible). client_id is always
    a classic nullable string, even in v2."""
    h = i16(api_key) + i16(version) + i32(corr) + string(client_id)
    if flexible:
        h += tags()
    return h


def frame(payload):
    return i32(len(payload)) + payload


# --------------------------------------------------------------------------
# CRC32C: tests/lib/crc32c.py
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from crc32c import crc32c  # noqa: E402


# --------------------------------------------------------------------------
# Record batches (magic 2) and legacy message sets (magic 0/1)


def now_ms():
    return int(time.time() * 1000)


def record(key, value, ts_delta=0, offset_delta=0, headers=()):
    body = i8(0) + varlong(ts_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        body += varint(len(hk)) + hk + varint(len(hv)) + hv
    return varint(len(body)) + body


def batch(records, base_offset=0, attributes=0, last_offset_delta=None, base_ts=None,
          max_ts=None, producer_id=-1, producer_epoch=-1, base_seq=-1, count=None,
          leader_epoch=-1, crc=None, length_delta=0, magic=2):
    """records: list of (key, value) or already-encoded record bytes."""
    enc = [r if isinstance(r, bytes) else record(r[0], r[1], offset_delta=i)
           for i, r in enumerate(records)]
    if base_ts is None:
        base_ts = now_ms()
    if max_ts is None:
        max_ts = base_ts
    if last_offset_delta is None:
        last_offset_delta = max(len(enc) - 1, 0)
    if count is None:
        count = len(enc)
    after_crc = (i16(attributes) + i32(last_offset_delta) + i64(base_ts) + i64(max_ts)
                 + i64(producer_id) + i16(producer_epoch) + i32(base_seq) + i32(count)
                 + b"".join(enc))
    c = crc32c(after_crc) if crc is None else crc
    after_len = i32(leader_epoch) + i8(magic) + u32(c) + after_crc
    return i64(base_offset) + i32(len(after_len) + length_delta) + after_len


def legacy_message(magic, key, value, offset=0, ts=None):
    body = i8(magic) + i8(0)
    if magic >= 1:
        body += i64(now_ms() if ts is None else ts)
    body += nbytes(key) + nbytes(value)
    msg = u32(zlib.crc32(body) & 0xFFFFFFFF) + body
    return i64(offset) + i32(len(msg)) + msg


# --------------------------------------------------------------------------
# Request builders


def req_api_versions(version, corr, name="fjord-bad-input", sw_version="1.0",
                     cluster_id=None, node_id=-1, client_id=CLIENT_ID):
    flexible = version >= 3
    body = b""
    if version >= 3:
        body += cstring(name) + cstring(sw_version)
    if version >= 5:
        body += cstring(cluster_id) + i32(node_id)
    if flexible:
        body += tags()
    return header(18, version, corr, flexible, client_id) + body


def req_metadata(version, corr, topics, allow_auto=True, client_id=CLIENT_ID):
    """topics: list of names, or None for all topics (v1+)."""
    flexible = version >= 9
    if flexible:
        items = None if topics is None else [
            (b"\x00" * 16 if version >= 10 else b"") + cstring(t) + tags() for t in topics]
        body = carray(items)
    else:
        body = array(None if topics is None else [string(t) for t in topics])
    if version >= 4:
        body += boolean(allow_auto)
    if 8 <= version <= 10:
        body += boolean(False)      # include_cluster_authorized_operations
    if version >= 8:
        body += boolean(False)      # include_topic_authorized_operations
    if flexible:
        body += tags()
    return header(3, version, corr, flexible, client_id) + body


def req_create_topics(corr, topics, version=7):
    """topics: {name: {config: value}}"""
    items = []
    for name, configs in topics.items():
        items.append(cstring(name) + i32(1) + i16(1) + carray([])
                     + carray([cstring(k) + cstring(v) + tags() for k, v in configs.items()])
                     + tags())
    body = carray(items) + i32(30000) + boolean(False) + tags()
    return header(19, version, corr, True) + body


def req_produce(version, corr, topic, records, partition=0, acks=-1, timeout_ms=10000,
                transactional_id=None, topic_id=None):
    """records: bytes of the partition's record set (None = null)."""
    flexible = version >= 9
    if flexible:
        part = i32(partition) + cbytes(records) + tags()
        tkey = topic_id if version >= 13 else cstring(topic)
        tdata = carray([tkey + carray([part]) + tags()])
        body = (cstring(transactional_id) + i16(acks) + i32(timeout_ms) + tdata + tags())
    else:
        part = i32(partition) + nbytes(records)
        tdata = array([string(topic) + array([part])])
        body = (string(transactional_id) if version >= 3 else b"") + i16(acks) + i32(timeout_ms) + tdata
    return header(0, version, corr, flexible) + body


# --------------------------------------------------------------------------
# Decoding


class Truncated(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def take(self, n):
        if n < 0 or self.p + n > len(self.d):
            raise Truncated("need %d bytes at %d of %d" % (n, self.p, len(self.d)))
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def un(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self):
        return self.un(">b", 1)

    def i16(self):
        return self.un(">h", 2)

    def i32(self):
        return self.un(">i", 4)

    def i64(self):
        return self.un(">q", 8)

    def uuid(self):
        return self.take(16)

    def boolean(self):
        return self.i8() != 0

    def uvarint(self):
        shift = n = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
            if shift > 63:
                raise Truncated("varint too long")

    def string(self, flexible):
        if flexible:
            n = self.uvarint() - 1
        else:
            n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")

    def array(self, flexible, fn):
        n = (self.uvarint() - 1) if flexible else self.i32()
        if n < 0:
            return None
        if n > len(self.d):
            raise Truncated("array count %d larger than the frame" % n)
        return [fn() for _ in range(n)]

    def tags(self):
        """Skips a tagged-field section, returns the sorted list of tags."""
        n = self.uvarint()
        seen = []
        for _ in range(n):
            t = self.uvarint()
            self.take(self.uvarint())
            seen.append(t)
        return sorted(seen)

    def remaining(self):
        return len(self.d) - self.p


def sign(v):
    """Broker-specific numbers are compared only as 'set' (>=0) or the sentinel."""
    return "set" if v >= 0 else v


def dec_api_versions(r, version):
    flex = version >= 3
    out = {"api": "ApiVersions", "v": version, "error": r.i16()}

    def key():
        k, lo, hi = r.i16(), r.i16(), r.i16()
        t = r.tags() if flex else []
        return (k, lo, hi, t)
    keys = r.array(flex, key)
    if version >= 1:
        r.i32()
        out["throttle_time"] = "present"
    if flex:
        out["tags"] = r.tags()
    if keys is None:
        out["api_keys"] = None
    else:
        own = [k for k in keys if k[0] == 18]
        out["api_versions_range"] = list(own[0][1:3]) if own else None
        out["api_keys_listed"] = "many" if len(keys) > 3 else sorted(k[0] for k in keys)
        out["api_key_tags"] = sorted({t for k in keys for t in k[3]})
    return out


def dec_metadata(r, version):
    flex = version >= 9
    out = {"api": "Metadata", "v": version}
    if version >= 3:
        r.i32()

    def broker():
        r.i32(); r.string(flex); r.i32()
        if version >= 1:
            r.string(flex)
        if flex:
            r.tags()
        return 1
    out["brokers"] = len(r.array(flex, broker) or [])
    if version >= 2:
        r.string(flex)
    if version >= 1:
        r.i32()

    def ints():
        return r.array(flex, r.i32)

    def partition():
        p = {"error": r.i16(), "index": r.i32(), "leader": sign(r.i32())}
        if version >= 7:
            r.i32()
        p["replicas"] = len(ints() or [])
        p["isr"] = len(ints() or [])
        if version >= 5:
            ints()
        if flex:
            r.tags()
        return p

    def topic():
        t = {"error": r.i16(), "name": r.string(flex)}
        if version >= 10:
            r.uuid()
        if version >= 1:
            t["is_internal"] = r.boolean()
        t["partitions"] = r.array(flex, partition)
        if version >= 8:
            t["authorized_operations"] = r.i32()
        if flex:
            r.tags()
        return t
    out["topics"] = r.array(flex, topic)
    if 8 <= version <= 10:
        r.i32()
    if version >= 13:
        out["error"] = r.i16()
    if flex:
        out["tags"] = r.tags()
    return out


def dec_produce(r, version):
    flex = version >= 9
    out = {"api": "Produce", "v": version}

    def partition():
        p = {"index": r.i32(), "error": r.i16(), "base_offset": sign(r.i64())}
        if version >= 2:
            p["log_append_time"] = sign(r.i64())
        if version >= 5:
            p["log_start_offset"] = sign(r.i64())
        if version >= 8:
            errs = r.array(flex, lambda: (r.i32(), r.string(flex) is not None,
                                          r.tags() if flex else None))
            p["record_errors"] = [{"batch_index": e[0], "message": e[1]} for e in errs]
            p["error_message"] = r.string(flex) is not None
        if flex:
            p["tags"] = r.tags()
        return p

    def topic():
        t = {}
        if version >= 13:
            r.uuid()
        else:
            t["name"] = r.string(flex)
        t["partitions"] = r.array(flex, partition)
        if flex:
            r.tags()
        return t
    out["topics"] = r.array(flex, topic)
    if version >= 1:
        r.i32()
    if flex:
        out["tags"] = r.tags()
    return out


def dec_create_topics(r, version):
    flex = version >= 5
    out = {"api": "CreateTopics", "v": version}
    if version >= 2:
        r.i32()

    def cfg():
        r.string(flex); r.string(flex); r.boolean(); r.i8(); r.boolean()
        if flex:
            r.tags()

    def topic():
        t = {"name": r.string(flex)}
        if version >= 7:
            r.uuid()
        t["error"] = r.i16()
        if version >= 1:
            t["message"] = r.string(flex)
        if version >= 5:
            r.i32(); r.i16()
            r.array(flex, cfg)
        if flex:
            r.tags()
        return t
    out["topics"] = r.array(flex, topic)
    if flex:
        r.tags()
    return out


DECODERS = {18: dec_api_versions, 3: dec_metadata, 0: dec_produce, 19: dec_create_topics}


def decode(payload, api_key, version, corr):
    """Decodes one response frame payload (without size prefix)."""
    r = Reader(payload)
    out = {}
    try:
        got = r.i32()
        out["correlation_id"] = "echoed" if got == corr else "other"
        flexible_header = {0: version >= 9, 3: version >= 9, 19: version >= 5}.get(api_key, False)
        if flexible_header:       # ApiVersions always uses response header v0
            out["header_tags"] = r.tags()
        fn = DECODERS.get(api_key)
        if fn is None:
            out["body"] = "not decoded"
            return out
        out.update(fn(r, version))
        out["trailing_bytes"] = r.remaining()
    except Truncated:
        out["decode_error"] = "truncated or malformed (does not parse as %s v%d)" % (
            api_key, version)
    return out


# --------------------------------------------------------------------------
# Talking to a broker


def recv_frames(sock, buf, n, deadline):
    """Reads until n complete frames are in buf or the deadline passes.
    Returns (frames, rest, state) where state is 'ok', 'eof' or 'timeout'."""
    frames = []
    while True:
        while len(buf) >= 4:
            (size,) = struct.unpack(">i", buf[:4])
            if size < 0 or len(buf) < 4 + size:
                break
            frames.append(buf[4:4 + size])
            buf = buf[4 + size:]
        if len(frames) >= n:
            return frames, buf, "ok"
        rem = deadline - time.monotonic()
        if rem <= 0:
            return frames, buf, "timeout"
        sock.settimeout(rem)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return frames, buf, "timeout"
        except OSError:          # connection reset
            return frames, buf, "eof"
        if not chunk:
            return frames, buf, "eof"
        buf += chunk


def probe_request():
    return frame(req_api_versions(0, PROBE_CORR))


def exchange(addr, data, nframes=1, wait=6.0, probe=True, chunks=None):
    """Sends data on a fresh connection. Returns (frames, info, client_addr)."""
    s = socket.create_connection(addr, timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = "%s:%d" % s.getsockname()[:2]
    try:
        for part in (chunks or [data]):
            try:
                s.sendall(part)
            except OSError:
                break
            if chunks:
                time.sleep(0.2)
        frames, rest, state = recv_frames(s, b"", nframes, time.monotonic() + wait)
        info = {"partial_bytes": len(rest)}
        if state == "eof":
            info["connection"] = "closed"
        elif not probe:
            info["connection"] = "open" if state == "ok" else "open, no answer"
        else:
            # The connection is open: is it still usable? (the probe is an
            # ApiVersions v0 request; a broker that answered everything so far
            # must answer it too).
            prefix = "" if state == "ok" else "no answer, then "
            try:
                s.sendall(probe_request())
                pf, _, pstate = recv_frames(s, b"", 1, time.monotonic() + 5)
            except OSError:
                pf, pstate = [], "eof"
            if pf and struct.unpack(">i", pf[0][:4])[0] == PROBE_CORR:
                info["connection"] = prefix + "usable"
            elif pstate == "eof":
                info["connection"] = prefix + "closed"
            else:
                info["connection"] = prefix + "unresponsive"
        return frames, info, client
    finally:
        s.close()


def request(addr, payload, api_key, version, corr, wait=15.0):
    frames, info, _ = exchange(addr, frame(payload), wait=wait, probe=False)
    if not frames:
        raise RuntimeError("no answer to api %d v%d (%s)" % (api_key, version, info))
    return decode(frames[0], api_key, version, corr)


# --------------------------------------------------------------------------
# Cases


class Case:
    def __init__(self, name, what, data=None, build=None, expect=(), nframes=None,
                 wait=6.0, probe=True, needs=None, chunks=None, all_topics=False,
                 kafka_bug=None):
        self.name = name
        self.all_topics = all_topics  # Metadata answer lists all topics: compare only that
        self.kafka_bug = kafka_bug    # Kafka's outcome is a Kafka bug: recorded, not enforced
        self.what = what
        self._data = data
        self._build = build
        self.expect = list(expect)    # [(api_key, version, corr)] to decode
        self.nframes = nframes if nframes is not None else max(len(self.expect), 1)
        self.wait = wait
        self.probe = probe
        self.needs = needs            # e.g. "CreateTopics"
        self._chunks = chunks

    def data(self, ctx):
        if self._build:
            return self._build(ctx)
        return self._data

    def chunks(self, ctx):
        return self._chunks(ctx) if self._chunks else None


def produce_case(name, what, topic, records, version=9, acks=-1, partition=0,
                 transactional_id=None, needs=None, corr=None, topic_id=None, wait=6.0,
                 kafka_bug=None):
    corr = corr if corr is not None else 5000 + (zlib.crc32(name.encode()) & 0xFFFF)

    def build(ctx):
        recs = records() if callable(records) else records
        return frame(req_produce(version, corr, topic, recs, partition=partition, acks=acks,
                                 transactional_id=transactional_id, topic_id=topic_id))
    expect = [] if acks == 0 else [(0, version, corr)]
    return Case(name, what, build=build, expect=expect, needs=needs, wait=wait,
                kafka_bug=kafka_bug)


def one(v=b"value"):
    return batch([(b"key", v)])


def build_cases():
    C = []
    # --- ApiVersions --------------------------------------------------------
    for v in range(0, 6):
        C.append(Case("apiversions_v%d" % v, "ApiVersions v%d, well formed" % v,
                      frame(req_api_versions(v, 100 + v)), expect=[(18, v, 100 + v)]))
    C.append(Case("apiversions_v127", "ApiVersions v127 (newer than the broker): "
                  "v0-shaped UNSUPPORTED_VERSION listing the ApiVersions range",
                  frame(req_api_versions(127, 127)), expect=[(18, 0, 127)]))
    C.append(Case("apiversions_v_neg1", "ApiVersions version -1",
                  frame(header(18, -1, 128, False)), expect=[(18, 0, 128)]))
    C.append(Case("apiversions_v3_empty_name", "ApiVersions v3, empty client software name",
                  frame(req_api_versions(3, 130, name="")), expect=[(18, 3, 130)]))
    C.append(Case("apiversions_v3_empty_version", "ApiVersions v3, empty client software version",
                  frame(req_api_versions(3, 131, sw_version="")), expect=[(18, 3, 131)]))
    C.append(Case("apiversions_v3_bad_name_chars", "ApiVersions v3, name 'bad name!'",
                  frame(req_api_versions(3, 132, name="bad name!")), expect=[(18, 3, 132)]))
    C.append(Case("apiversions_v3_bad_version_chars", "ApiVersions v3, version '-1.0_x'",
                  frame(req_api_versions(3, 133, sw_version="-1.0_x")), expect=[(18, 3, 133)]))
    C.append(Case("apiversions_v3_null_name", "ApiVersions v3, null (length 0) software name",
                  frame(header(18, 3, 134, True) + cstring(None) + cstring("1.0") + tags()),
                  expect=[(18, 3, 134)]))
    C.append(Case("apiversions_v4_null_client_id", "ApiVersions v4 with a null header client id",
                  frame(req_api_versions(4, 135, client_id=None)), expect=[(18, 4, 135)]))
    C.append(Case("apiversions_v4_empty_client_id", "ApiVersions v4 with an empty client id",
                  frame(req_api_versions(4, 136, client_id="")), expect=[(18, 4, 136)]))
    C.append(Case("apiversions_v5_wrong_cluster", "ApiVersions v5 naming another cluster id/node",
                  frame(req_api_versions(5, 137, cluster_id="AAAAAAAAAAAAAAAAAAAAAA", node_id=42)),
                  expect=[(18, 5, 137)]))
    C.append(Case("apiversions_v3_unknown_tag", "ApiVersions v3 with an unknown tagged field (must be skipped)",
                  frame(header(18, 3, 138, True) + cstring("x") + cstring("1")
                        + tags([(77, b"abc")])), expect=[(18, 3, 138)]))
    C.append(Case("apiversions_v3_header_unknown_tag", "ApiVersions v3, unknown tag in the request header",
                  frame(i16(18) + i16(3) + i32(139) + string(CLIENT_ID) + tags([(5, b"zz")])
                        + cstring("x") + cstring("1") + tags()), expect=[(18, 3, 139)]))
    # --- unknown keys and unsupported versions ------------------------------
    C.append(Case("unknown_api_key_999", "API key 999",
                  frame(header(999, 0, 200, False) + b"\x00" * 8), expect=[]))
    C.append(Case("unknown_api_key_neg", "API key -2",
                  frame(header(-2, 0, 201, False) + b"\x00" * 8), expect=[]))
    C.append(Case("internal_api_leader_and_isr", "API key 4 (LeaderAndIsr, not served to clients)",
                  frame(header(4, 7, 202, True) + b"\x00" * 16), expect=[]))
    C.append(Case("produce_v99", "Produce v99",
                  build=lambda ctx: frame(i16(0) + i16(99) + i32(203) + string(CLIENT_ID) + tags()
                                          + cstring(None) + i16(1) + i32(1000) + carray([]) + tags()),
                  expect=[(0, 99, 203)]))
    C.append(Case("metadata_v_neg1", "Metadata v-1",
                  frame(header(3, -1, 204, False) + array([])), expect=[(3, 0, 204)]))
    C.append(Case("fetch_v3", "Fetch v3 (removed in Kafka 4)",
                  frame(header(1, 3, 205, False) + i32(-1) + i32(100) + i32(1) + i32(1000)
                        + array([string(T_PLAIN) + array([i32(0) + i64(0) + i32(1000)])])),
                  expect=[(1, 3, 205)]))
    C.append(Case("metadata_v14", "Metadata v14 (one above Kafka 4.4's max)",
                  frame(req_metadata(13, 206, [])[:2] + i16(14) + req_metadata(13, 206, [])[4:]),
                  expect=[(3, 14, 206)]))
    C.append(produce_case("produce_v2_advertised_but_removed",
                          "Produce v2 (advertised from v0 but removed, KAFKA-18659)",
                          T_PLAIN, lambda: legacy_message(1, b"k", b"v"), version=2, corr=207))
    # --- framing --------------------------------------------------------------
    C.append(Case("frame_len_zero", "frame size 0", i32(0), expect=[]))
    C.append(Case("frame_len_negative", "frame size -5", i32(-5) + b"\x00" * 8, expect=[]))
    C.append(Case("frame_len_min_int", "frame size -2^31", i32(-2 ** 31) + b"\x00" * 8, expect=[]))
    C.append(Case("frame_too_large", "frame size socket.request.max.bytes+1",
                  i32(MAX_REQUEST_BYTES + 1) + req_api_versions(0, 300), expect=[]))
    C.append(Case("frame_len_max_int", "frame size 2^31-1",
                  i32(2 ** 31 - 1) + req_api_versions(0, 301), expect=[]))
    C.append(Case("frame_at_limit_padded", "ApiVersions v0 padded to exactly socket.request.max.bytes",
                  build=lambda ctx: frame(req_api_versions(0, 302) + b"\x00" * (
                      MAX_REQUEST_BYTES - len(req_api_versions(0, 302)))),
                  expect=[(18, 0, 302)], wait=10))
    C.append(Case("frame_incomplete_waits", "frame announces 40 bytes, 20 sent: broker keeps waiting",
                  i32(40) + req_api_versions(0, 303)[:20], expect=[], wait=3, probe=False))
    C.append(Case("frame_split_in_pieces", "one ApiVersions v0 frame sent in 3 TCP writes",
                  None, build=lambda ctx: frame(req_api_versions(0, 304)),
                  chunks=lambda ctx: [frame(req_api_versions(0, 304))[:3],
                                      frame(req_api_versions(0, 304))[3:9],
                                      frame(req_api_versions(0, 304))[9:]],
                  expect=[(18, 0, 304)]))
    C.append(Case("frames_pipelined", "ApiVersions v0 + Metadata v1 + ApiVersions v3 in one write",
                  frame(req_api_versions(0, 305)) + frame(req_metadata(1, 306, []))
                  + frame(req_api_versions(3, 307)),
                  expect=[(18, 0, 305), (3, 1, 306), (18, 3, 307)]))
    C.append(Case("header_truncated_in_corr_id", "6-byte frame: api key, version, half a correlation id",
                  frame(i16(18) + i16(0) + b"\x00\x01"), expect=[]))
    C.append(Case("header_truncated_in_key", "1-byte frame", frame(b"\x00"), expect=[]))
    C.append(Case("header_without_client_id", "ApiVersions v0 frame ending after the correlation id",
                  frame(i16(18) + i16(0) + i32(310)), expect=[(18, 0, 310)]))
    C.append(Case("client_id_longer_than_frame", "client id length 1000, 5 bytes follow",
                  frame(i16(18) + i16(0) + i32(311) + i16(1000) + b"abcde"), expect=[(18, 0, 311)]))
    C.append(Case("client_id_negative_len", "client id length -2",
                  frame(i16(3) + i16(1) + i32(312) + i16(-2) + array([])), expect=[(3, 1, 312)]))
    C.append(Case("client_id_null_metadata", "Metadata v1 with a null client id (accepted)",
                  frame(req_metadata(1, 313, [], client_id=None)), expect=[(3, 1, 313)]))
    C.append(Case("trailing_garbage_apiversions_v0", "ApiVersions v0 + 7 garbage bytes",
                  frame(req_api_versions(0, 320) + b"garbage"), expect=[(18, 0, 320)]))
    C.append(Case("trailing_garbage_apiversions_v3", "ApiVersions v3 + 7 garbage bytes",
                  frame(req_api_versions(3, 321) + b"garbage"), expect=[(18, 3, 321)]))
    C.append(Case("trailing_garbage_metadata_v1", "Metadata v1 (no topics) + 7 garbage bytes",
                  frame(req_metadata(1, 322, []) + b"garbage"), expect=[(3, 1, 322)]))
    C.append(Case("trailing_garbage_metadata_v12", "Metadata v12 (no topics) + 7 garbage bytes",
                  frame(req_metadata(12, 323, []) + b"garbage"), expect=[(3, 12, 323)]))
    C.append(Case("trailing_garbage_produce_v9", "Produce v9 (valid batch) + 7 garbage bytes",
                  build=lambda ctx: frame(req_produce(9, 324, T_PLAIN, one()) + b"garbage"),
                  expect=[(0, 9, 324)]))
    C.append(Case("tagged_field_size_past_end", "ApiVersions v3, body tag says 50 bytes, 2 follow",
                  frame(header(18, 3, 330, True) + cstring("x") + cstring("1")
                        + uvarint(1) + uvarint(0) + uvarint(50) + b"ab"), expect=[(18, 3, 330)]))
    C.append(Case("tagged_field_count_past_end", "Metadata v12, body tag count 5, no tags follow",
                  frame(req_metadata(12, 331, [])[:-1] + uvarint(5)), expect=[(3, 12, 331)]))
    C.append(Case("tagged_field_header_malformed", "Metadata v12, header tag section count 3, nothing follows",
                  frame(i16(3) + i16(12) + i32(332) + string(CLIENT_ID) + uvarint(3)),
                  expect=[(3, 12, 332)]))
    C.append(Case("tagged_field_bad_varint", "Metadata v12, tag section is an unterminated varint",
                  frame(req_metadata(12, 333, [])[:-1] + b"\xff\xff\xff\xff\xff\xff"),
                  expect=[(3, 12, 333)]))
    C.append(Case("tagged_fields_duplicate", "ApiVersions v3 with the same unknown tag twice",
                  frame(header(18, 3, 334, True) + cstring("x") + cstring("1")
                        + uvarint(2) + uvarint(9) + uvarint(1) + b"a" + uvarint(9) + uvarint(1) + b"b"),
                  expect=[(18, 3, 334)]))
    C.append(Case("tagged_fields_out_of_order", "ApiVersions v3 with tags 9 then 8",
                  frame(header(18, 3, 335, True) + cstring("x") + cstring("1")
                        + uvarint(2) + uvarint(9) + uvarint(1) + b"a" + uvarint(8) + uvarint(1) + b"b"),
                  expect=[(18, 3, 335)]))
    C.append(Case("array_count_max_metadata_v1", "Metadata v1, topic array count 2^31-1 in a tiny frame",
                  frame(header(3, 1, 340, False) + i32(2 ** 31 - 1) + string("t")),
                  expect=[(3, 1, 340)]))
    C.append(Case("array_count_max_metadata_v12", "Metadata v12, compact topic array count 2^31-1",
                  frame(header(3, 12, 341, True) + uvarint(2 ** 31) + b"\x00" * 16 + cstring("t")),
                  expect=[(3, 12, 341)]))
    C.append(Case("array_count_max_produce_v9", "Produce v9, topic array count 2^31-1",
                  frame(header(0, 9, 342, True) + cstring(None) + i16(1) + i32(1000) + uvarint(2 ** 31)),
                  expect=[(0, 9, 342)]))
    C.append(Case("array_count_negative_metadata_v4", "Metadata v4, topic array count -2",
                  frame(header(3, 4, 343, False) + i32(-2) + boolean(False)), expect=[(3, 4, 343)],
                  all_topics=True))
    C.append(Case("string_len_past_end_metadata_v12", "Metadata v12, topic name length 200, 3 bytes follow",
                  frame(header(3, 12, 344, True) + carray([b"\x00" * 16 + uvarint(201) + b"abc"])),
                  expect=[(3, 12, 344)]))
    C.append(Case("records_len_past_end_produce_v9", "Produce v9, records length 10000, 61 bytes follow",
                  build=lambda ctx: frame(header(0, 9, 345, True) + cstring(None) + i16(1) + i32(1000)
                                          + carray([cstring(T_PLAIN) + carray([i32(0) + uvarint(10001)
                                                                                + one()[:61]])])),
                  expect=[(0, 9, 345)]))
    C.append(Case("metadata_v12_null_topic_name", "Metadata v12 asking for a topic with a null name",
                  frame(header(3, 12, 346, True) + carray([b"\x00" * 16 + cstring(None) + tags()])
                        + boolean(False) + boolean(False) + tags()), expect=[(3, 12, 346)]))
    C.append(Case("metadata_v12_invalid_topic_name", "Metadata v12 with topic name 'bad/name' (auto-create on)",
                  frame(req_metadata(12, 347, ["bad/name"])), expect=[(3, 12, 347)]))
    # --- Produce with invalid batches ----------------------------------------
    C.append(produce_case("produce_ok_baseline", "valid batch (baseline)", T_PLAIN, one))
    C.append(produce_case("produce_v12_ok", "valid batch at Produce v12", T_PLAIN, one, version=12))
    C.append(produce_case("produce_v13_unknown_topic_id", "Produce v13 with an unknown topic id",
                          T_PLAIN, one, version=13, topic_id=b"\x13" * 16))
    C.append(produce_case("produce_bad_crc", "batch with a wrong CRC32C", T_PLAIN,
                          lambda: batch([(b"k", b"v")], crc=0xDEADBEEF)))
    C.append(produce_case("produce_magic0_v9", "magic 0 message set at Produce v9", T_PLAIN,
                          lambda: legacy_message(0, b"k", b"v")))
    C.append(produce_case("produce_magic1_v9", "magic 1 message set at Produce v9", T_PLAIN,
                          lambda: legacy_message(1, b"k", b"v")))
    C.append(produce_case("produce_magic1_v3", "magic 1 message set at Produce v3", T_PLAIN,
                          lambda: legacy_message(1, b"k", b"v"), version=3))
    C.append(produce_case("produce_magic3", "batch with magic 3", T_PLAIN,
                          lambda: batch([(b"k", b"v")], magic=3)))
    C.append(produce_case("produce_last_offset_delta_mismatch",
                          "2 records, count 2, lastOffsetDelta 5", T_PLAIN,
                          lambda: batch([(b"a", b"1"), (b"b", b"2")], last_offset_delta=5)))
    C.append(produce_case("produce_count_exceeds_records",
                          "count 3 and lastOffsetDelta 2, but only 2 records", T_PLAIN,
                          lambda: batch([(b"a", b"1"), (b"b", b"2")], count=3, last_offset_delta=2)))
    C.append(produce_case("produce_count_zero", "empty batch (count 0, lastOffsetDelta 0)",
                          T_PLAIN, lambda: batch([], count=0, last_offset_delta=0)))
    C.append(produce_case("produce_bad_offset_deltas", "2 records, offset deltas 0 and 7", T_PLAIN,
                          lambda: batch([record(b"a", b"1", offset_delta=0),
                                         record(b"b", b"2", offset_delta=7)])))
    C.append(produce_case("produce_nonzero_base_offset", "batch with base offset 1000", T_PLAIN,
                          lambda: batch([(b"k", b"v")], base_offset=1000)))
    C.append(produce_case("produce_control_batch", "control batch (attributes bit 5) from a client",
                          T_PLAIN, lambda: batch([record(i16(0) + i16(0), i16(0) + i32(0))],
                                                 attributes=0x20 | 0x10, producer_id=1,
                                                 producer_epoch=0)))
    C.append(produce_case("produce_control_batch_nontxn", "control bit set, no transactional bit, pid -1",
                          T_PLAIN, lambda: batch([(b"k", b"v")], attributes=0x20)))
    C.append(produce_case("produce_batch_length_too_big", "batch length field 100 bytes beyond the data",
                          T_PLAIN, lambda: batch([(b"k", b"v")], length_delta=100)))
    C.append(produce_case("produce_batch_length_too_small", "batch length field 5 bytes short",
                          T_PLAIN, lambda: batch([(b"k", b"v")], length_delta=-5)))
    C.append(produce_case("produce_two_batches", "two batches in one partition's records",
                          T_PLAIN, lambda: batch([(b"k", b"v")]) + batch([(b"k", b"v")])))
    C.append(produce_case("produce_truncated_record", "batch whose only record is cut short (CRC valid)",
                          T_PLAIN, lambda: batch([record(b"k", b"value")[:-4]])))
    C.append(produce_case("produce_null_records", "partition with null records", T_PLAIN, None,
                          kafka_bug="Kafka 4.4 throws a NullPointerException while logging the "
                          "request (ProduceRequest.partitionSizes) and never answers; the "
                          "connection stays muted"))
    C.append(produce_case("produce_empty_records", "partition with zero-length records", T_PLAIN, b""))
    C.append(produce_case("produce_bad_compression", "compression codec 6 in attributes", T_PLAIN,
                          lambda: batch([(b"k", b"v")], attributes=6)))
    C.append(produce_case("produce_gzip_garbage", "gzip attribute on uncompressed records", T_PLAIN,
                          lambda: batch([(b"k", b"v")], attributes=1)))
    C.append(produce_case("produce_transactional_no_pid",
                          "transactional bit set, producer id -1, no transactional id", T_PLAIN,
                          lambda: batch([(b"k", b"v")], attributes=0x10)))
    C.append(produce_case("produce_transactional_id_no_pid",
                          "transactional id 'bi-txn', transactional bit, producer id -1", T_PLAIN,
                          lambda: batch([(b"k", b"v")], attributes=0x10), transactional_id="bi-txn"))
    C.append(produce_case("produce_idempotent_no_pid",
                          "producer id -1 with epoch 0 and base sequence 0", T_PLAIN,
                          lambda: batch([(b"k", b"v")], producer_epoch=0, base_seq=0)))
    C.append(produce_case("produce_unknown_producer_id", "producer id never issued by the broker, "
                          "sequence 0 (a fresh id per run, so a reused broker sees no duplicate)",
                          T_PLAIN, lambda: batch([(b"k", b"v")], producer_id=RUN_PRODUCER_ID,
                                                 producer_epoch=0, base_seq=0)))
    C.append(produce_case("produce_unknown_topic", "topic that does not exist", T_MISSING, one))
    C.append(produce_case("produce_bad_partition", "partition 7 of a 1-partition topic", T_PLAIN, one,
                          partition=7))
    C.append(produce_case("produce_negative_partition", "partition -1", T_PLAIN, one, partition=-1))
    C.append(produce_case("produce_invalid_acks", "acks=2", T_PLAIN, one, acks=2))
    C.append(produce_case("produce_invalid_topic_name", "topic name 'bad/name'", "bad/name", one))
    C.append(produce_case("produce_acks0_bad_crc", "acks=0 with a bad CRC: no response, then?",
                          T_PLAIN, lambda: batch([(b"k", b"v")], crc=1), acks=0, wait=3))
    C.append(produce_case("produce_acks0_ok", "acks=0 with a valid batch", T_PLAIN, one, acks=0, wait=2))
    C.append(produce_case("produce_ts_negative_plain", "timestamp -5 on a default topic", T_PLAIN,
                          lambda: batch([(b"k", b"v")], base_ts=-5, max_ts=-5)))
    C.append(produce_case("produce_ts_far_future_plain", "timestamp now+2 days on a default topic",
                          T_PLAIN, lambda: batch([(b"k", b"v")], base_ts=now_ms() + 2 * 86400000)))
    C.append(produce_case("produce_ts_too_old", "timestamp now-2h, message.timestamp.before.max.ms=1h",
                          T_TS, lambda: batch([(b"k", b"v")], base_ts=now_ms() - 2 * 3600000),
                          needs="CreateTopics"))
    C.append(produce_case("produce_ts_too_new", "timestamp now+2h, message.timestamp.after.max.ms=1h",
                          T_TS, lambda: batch([(b"k", b"v")], base_ts=now_ms() + 2 * 3600000),
                          needs="CreateTopics"))
    C.append(produce_case("produce_ts_in_window", "timestamp now on the 1h-window topic (accepted)",
                          T_TS, one, needs="CreateTopics"))
    C.append(produce_case("produce_ts_second_record_too_old",
                          "2 records, the second 3h old, on the 1h-window topic", T_TS,
                          lambda: batch([record(b"a", b"1", 0, 0),
                                         record(b"b", b"2", -3 * 3600000, 1)]),
                          needs="CreateTopics"))
    C.append(produce_case("produce_record_too_large", "4000-byte record, max.message.bytes=1024",
                          T_SMALL, lambda: one(b"x" * 4000), needs="CreateTopics"))
    C.append(produce_case("produce_record_fits", "100-byte record, max.message.bytes=1024 (accepted)",
                          T_SMALL, lambda: one(b"x" * 100), needs="CreateTopics"))
    C.append(produce_case("produce_compacted_no_key", "key-less record to a compacted topic",
                          T_COMPACT, lambda: batch([(None, b"v")]), needs="CreateTopics"))
    C.append(produce_case("produce_compacted_second_no_key",
                          "3 records to a compacted topic, the 2nd key-less", T_COMPACT,
                          lambda: batch([(b"a", b"1"), (None, b"2"), (b"c", b"3")]),
                          needs="CreateTopics"))
    C.append(produce_case("produce_compacted_with_key", "keyed record to a compacted topic (accepted)",
                          T_COMPACT, one, needs="CreateTopics"))
    return C


# --------------------------------------------------------------------------
# Running the cases against one broker


def normalise(case, frames, info):
    out = {"responses": []}
    for i, payload in enumerate(frames):
        if i < len(case.expect):
            key, ver, corr = case.expect[i]
            r = decode(payload, key, ver, corr)
            if case.all_topics and isinstance(r.get("topics"), list):
                r["topics"] = {"all_topics_listed": any(
                    t.get("name") == T_PLAIN and t.get("error") == 0 for t in r["topics"])}
            out["responses"].append(r)
        else:
            out["responses"].append({"unexpected_frame": True})
    out["connection"] = info["connection"]
    if info["partial_bytes"]:
        out["partial_response_bytes"] = True
    return out


def summary(o):
    if o is None:
        return "-"
    if "skipped" in o:
        return "SKIP"
    if "status" in o:
        return o["status"]
    parts = []
    for r in o["responses"]:
        if "decode_error" in r:
            parts.append("undecodable")
            continue
        if r.get("correlation_id") == "other":
            parts.append("wrong-corr")
        s = r.get("api", "resp")
        if "error" in r:
            s += " err=%d" % r["error"]
        topics = r.get("topics")
        if isinstance(topics, dict):
            s += " (all topics)"
            topics = []
        for t in topics or []:
            if "error" in t:
                s += " t:%d" % t["error"]
            for p in t.get("partitions") or []:
                s += " p:%d" % p["error"]
                if p.get("record_errors"):
                    s += "%s" % [e["batch_index"] for e in p["record_errors"]]
        if r.get("trailing_bytes"):
            s += " +%dB" % r["trailing_bytes"]
        parts.append(s)
    parts.append(o["connection"])
    if o.get("partial_response_bytes"):
        parts.append("PARTIAL-BYTES")
    return "; ".join(parts)


class Broker:
    """One broker under test: its address, how to read its log, and what it
    supports (from ApiVersions)."""

    def __init__(self, label, addr, log_path=None):
        self.label = label
        self.addr = addr
        self.sock_addr = parse_addr(addr)
        self.log_path = log_path
        self.apis = {}

    def read_log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return None
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def wait_topic(broker, topic, auto_create, deadline_s=30):
    deadline = time.time() + deadline_s
    last = None
    while time.time() < deadline:
        r = request(broker.sock_addr, req_metadata(12, 9000, [topic], allow_auto=auto_create), 3, 12, 9000)
        t = (r.get("topics") or [{}])[0]
        last = t
        parts = t.get("partitions") or []
        if t.get("error") == 0 and parts and all(p["error"] == 0 and p["leader"] == "set"
                                                 for p in parts):
            return True
        time.sleep(0.3)
    raise RuntimeError("%s: topic %s not ready: %s" % (broker.label, topic, last))


def setup_broker(broker, log):
    """Reads ApiVersions, creates the topics. Returns the set of unmet needs.
    A failing step is logged and the run goes on: the cases that depend on it
    then fail on their own (e.g. UNKNOWN_TOPIC_OR_PARTITION), the others still run."""
    unmet = set()
    try:
        r = Reader(exchange(broker.sock_addr, frame(req_api_versions(3, 9001)), probe=False)[0][0])
        r.i32()
        r.i16()
        for _ in range(r.uvarint() - 1):
            k, lo, hi = r.i16(), r.i16(), r.i16()
            r.tags()
            broker.apis[k] = (lo, hi)
    except (IndexError, Truncated, OSError) as e:
        log("%s: could not read ApiVersions v3 (%s)" % (broker.label, e))
    for topic in (T_PLAIN, T_KCAT):
        try:
            wait_topic(broker, topic, auto_create=True)
        except (RuntimeError, OSError) as e:
            log("%s: set-up: Metadata auto-creation of %s failed: %s" % (broker.label, topic, e))
    ct = broker.apis.get(19)
    if ct and ct[1] >= 5:
        ver = min(ct[1], 7)
        try:
            resp = request(broker.sock_addr, req_create_topics(9002, CONFIGURED_TOPICS, ver),
                           19, ver, 9002, wait=40)
            if "decode_error" in resp or not resp.get("topics"):
                raise RuntimeError("CreateTopics v%d answer: %s" % (ver, resp))
            for t in resp["topics"]:
                if t["error"] not in (0, 36):    # 36 TOPIC_ALREADY_EXISTS (reused broker)
                    raise RuntimeError("CreateTopics %s failed: %s" % (t["name"], t))
            for topic in CONFIGURED_TOPICS:
                wait_topic(broker, topic, auto_create=False)
        except (RuntimeError, OSError) as e:
            log("%s: set-up: %s" % (broker.label, e))
    else:
        unmet.add("CreateTopics")
        log("%s: does not advertise CreateTopics v5+ (key 19): cases needing configured topics "
            "are skipped" % broker.label)
    return unmet


def run_cases(broker, cases, log):
    unmet = setup_broker(broker, log)
    results = {}
    for case in cases:
        if case.needs and case.needs in unmet:
            results[case.name] = ({"skipped": "needs %s (not advertised by %s yet)"
                                   % (case.needs, broker.label)}, None)
            continue
        try:
            frames, info, client = exchange(broker.sock_addr, case.data(None), nframes=case.nframes,
                                            wait=case.wait, probe=case.probe,
                                            chunks=case.chunks(None))
            results[case.name] = (normalise(case, frames, info), client)
        except OSError as e:
            results[case.name] = ({"status": "error: %s" % e.__class__.__name__}, None)
    return results


def kcat_checks(broker):
    """A normal client still works: kcat -L, then produce + consume one message."""
    out = {}
    try:
        p = subprocess.run(["kcat", "-b", broker.addr, "-L", "-m", "10"], capture_output=True,
                           text=True, timeout=30)
        ok = p.returncode == 0 and " 1 brokers:" in p.stdout and T_PLAIN in p.stdout
        out["kcat_metadata"] = {"status": "ok" if ok else "failed"}
    except subprocess.TimeoutExpired:
        out["kcat_metadata"] = {"status": "timeout"}
    nonce = "bad-input-roundtrip-%d" % int(time.time() * 1000)
    try:
        p = subprocess.run(["kcat", "-b", broker.addr, "-P", "-t", T_KCAT, "-p", "0", "-m", "10"],
                           input=nonce + "\n", capture_output=True, text=True, timeout=30)
        produced = p.returncode == 0
        c = subprocess.run(["kcat", "-b", broker.addr, "-C", "-t", T_KCAT, "-p", "0", "-o",
                            "beginning", "-e", "-q", "-m", "10"],
                           capture_output=True, text=True, timeout=30)
        ok = produced and c.returncode == 0 and nonce in c.stdout.split("\n")
        out["kcat_produce_consume"] = {"status": "ok" if ok else "failed"}
    except subprocess.TimeoutExpired:
        out["kcat_produce_consume"] = {"status": "timeout"}
    return out


# --------------------------------------------------------------------------
# Starting and stopping the brokers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_kafka(workdir):
    env = dict(os.environ)
    env["KAFKA_REF_CONFIG"] = ("socket.request.max.bytes=%d\n" % MAX_REQUEST_BYTES
                               + env.get("KAFKA_REF_CONFIG", ""))
    p = subprocess.run([KAFKA_REF, "start", workdir], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("kafka-ref start failed:\n" + p.stderr[-3000:])
    addr = p.stdout.strip().splitlines()[-1]
    return addr


def stop_kafka(workdir):
    subprocess.run([KAFKA_REF, "stop", workdir], capture_output=True)


class Fjord:
    def __init__(self, binary, workdir, overrides):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.log_path = os.path.join(workdir, "fjord.log")
        logdir = os.path.join(workdir, "data")
        os.makedirs(logdir, exist_ok=True)
        args = [binary, "start", "--smp", "1",
                "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % self.port,
                "--override", "log.dirs=%s" % logdir,
                "--override", "socket.request.max.bytes=%d" % MAX_REQUEST_BYTES]
        for o in overrides:
            args += ["--override", o]
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("fjord exited with %s during start-up; log %s:\n%s" % (
                    self.proc.returncode, self.log_path, self.tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError("fjord did not accept TCP on %d within 60 s" % self.port)
                time.sleep(0.2)
        self.addr = "127.0.0.1:%d" % self.port

    def tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def parse_addr(a):
    host, _, port = a.rpartition(":")
    return (host, int(port))


# --------------------------------------------------------------------------
# Main


def main():
    ap = argparse.ArgumentParser(description="Fjord vs Apache Kafka 4.4 on malformed input")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--kafka-only", action="store_true", help="run only the reference Kafka")
    mode.add_argument("--fjord-only", action="store_true", help="run only Fjord, print its outcomes")
    mode.add_argument("--expected", nargs="?", const=EXPECTED_FILE, metavar="FILE",
                      help="compare Fjord with saved Kafka outcomes (default %s)"
                      % os.path.relpath(EXPECTED_FILE, REPO))
    ap.add_argument("--record", action="store_true",
                    help="save Kafka's outcomes to kafka-4.4-expected.json")
    ap.add_argument("--fjord-bin", default=os.environ.get("FJORD_BIN", DEFAULT_FJORD_BIN))
    ap.add_argument("--fjord-override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra --override for Fjord (repeatable)")
    ap.add_argument("--kafka-addr", help="use an already running reference Kafka (must have "
                    "socket.request.max.bytes=%d)" % MAX_REQUEST_BYTES)
    ap.add_argument("--kafka-log", help="log file of the broker given by --kafka-addr")
    ap.add_argument("--fjord-addr", help="use an already running Fjord")
    ap.add_argument("--fjord-log", help="log file of the Fjord given by --fjord-addr")
    ap.add_argument("--case", action="append", default=[], metavar="GLOB",
                    help="run only cases whose name matches (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print full outcomes")
    args = ap.parse_args()

    cases = build_cases()
    if args.case:
        cases = [c for c in cases if any(fnmatch.fnmatch(c.name, g) for g in args.case)]
    if args.list:
        for c in cases:
            print("%-40s %s%s" % (c.name, c.what, "  [needs %s]" % c.needs if c.needs else ""))
        return 0
    if args.record and (args.fjord_only or args.expected):
        ap.error("--record needs the reference Kafka")

    run_kafka = not (args.fjord_only or args.expected)
    run_fjord = not args.kafka_only
    expected = None
    exp_path = args.expected or EXPECTED_FILE
    if args.expected or args.kafka_only:
        if os.path.exists(exp_path):
            with open(exp_path) as f:
                expected = json.load(f)
        elif args.expected:
            print("bad_input: no expectations file %s (make it with --kafka-only --record)"
                  % exp_path, file=sys.stderr)
            return 2

    def log(msg):
        print("bad_input: " + msg, file=sys.stderr, flush=True)

    if run_fjord and not args.fjord_addr and not os.access(args.fjord_bin, os.X_OK):
        log("Fjord binary %s not found (set FJORD_BIN or use --kafka-only)" % args.fjord_bin)
        return 2

    work = tempfile.mkdtemp(prefix="fjord-bad-input-")
    kdir = os.path.join(work, "kafka")
    kafka_started = False
    fjord = None
    results = {}
    rc = 0
    try:
        brokers = []
        if run_fjord:
            if args.fjord_addr:
                fb = Broker("fjord", args.fjord_addr, args.fjord_log)
            else:
                fdir = os.path.join(work, "fjord")
                os.makedirs(fdir)
                log("starting Fjord %s" % args.fjord_bin)
                fjord = Fjord(args.fjord_bin, fdir, args.fjord_override)
                fb = Broker("fjord", fjord.addr, fjord.log_path)
            brokers.append(fb)
        if run_kafka:
            if args.kafka_addr:
                kb = Broker("kafka", args.kafka_addr, args.kafka_log)
            else:
                log("starting reference Kafka 4.4 in %s" % kdir)
                kafka_started = True
                kb = Broker("kafka", start_kafka(kdir), os.path.join(kdir, "kafka.log"))
            brokers.append(kb)
        brokers.sort(key=lambda b: b.label != "kafka")
        for b in brokers:
            log("%s at %s" % (b.label, b.addr))
            res = run_cases(b, cases, log)
            for name, o in kcat_checks(b).items():
                res[name] = (o, None)
            results[b.label] = res
    except RuntimeError as e:
        log(str(e))
        rc = 2
    finally:
        if fjord:
            fjord.stop()
        if kafka_started:
            stop_kafka(kdir)
    if rc:
        log("set-up failed; work directory kept for inspection: %s" % work)
        return rc

    # ---- the log check: a closed connection must be logged with the client's ip:port
    log_notes = {}
    for b in brokers:
        text = b.read_log()
        for name, (o, client) in results[b.label].items():
            if client and o.get("connection") == "closed" and not o.get("responses"):
                if text is None:
                    log_notes.setdefault(b.label, {})[name] = None
                else:
                    log_notes.setdefault(b.label, {})[name] = client in text

    names = [c.name for c in cases] + ["kcat_metadata", "kcat_produce_consume"]
    kafka = {n: results["kafka"][n][0] for n in names} if "kafka" in results else None
    fj = {n: results["fjord"][n][0] for n in names} if "fjord" in results else None
    if kafka is None and expected is not None:
        kafka = {n: expected["cases"].get(n) for n in names}
    left = kafka if kafka is not None else {}
    kafka_label = "kafka" if "kafka" in results else "kafka(saved)"
    if args.kafka_only:
        right, right_label = ({n: expected["cases"].get(n) for n in names}
                              if expected else None), "saved"
    elif args.fjord_only:
        left, kafka_label = fj, "fjord"
        right, right_label = None, ""
    else:
        right, right_label = fj, "fjord"
    fjord_col = "fjord" if "fjord" in results else None

    by_name = {c.name: c for c in cases}
    mismatches = 0
    print("%-40s %-44s %-44s %s" % ("case", kafka_label, right_label, "verdict"))
    for n in names:
        k = left.get(n) if left else None
        f = right.get(n) if right else None
        if right is None:
            verdict = ""
        elif k is None:
            verdict = "NO-EXPECTATION"
            mismatches += 1
        elif f is not None and "skipped" in f:
            verdict = "SKIP (%s)" % f["skipped"]
        elif k == f:
            verdict = "MATCH"
        elif n in by_name and by_name[n].kafka_bug:
            verdict = "DIFFERS, NOT ENFORCED (Kafka bug: %s)" % by_name[n].kafka_bug
        elif args.record:
            verdict = "CHANGED (re-recorded)"
        else:
            verdict = "MISMATCH"
            mismatches += 1
        if fjord_col and log_notes.get("fjord", {}).get(n) is False:
            verdict += " +LOG-MISSING(client addr not in Fjord log)"
            mismatches += 1
        shown_left = left.get(n) if left else None
        print("%-40s %-44s %-44s %s" % (n, summary(shown_left)[:44],
                                         summary(f)[:44] if right else "", verdict))
        if args.verbose or verdict.startswith(("MISMATCH", "DIFFERS", "CHANGED")):
            print("    %s: %s" % (kafka_label, json.dumps(shown_left, sort_keys=True)))
            if right:
                print("    %s: %s" % (right_label, json.dumps(f, sort_keys=True)))
    for label, notes in log_notes.items():
        unlogged = sorted(n for n, v in notes.items() if v is False)
        if unlogged:
            print("log check (%s): client ip:port not found in the log for: %s"
                  % (label, ", ".join(unlogged)))
        logged = sum(1 for v in notes.values() if v)
        unknown = sum(1 for v in notes.values() if v is None)
        print("log check (%s): client ip:port logged for %d of %d cases closed without an answer%s"
              % (label, logged, len(notes), " (log not available)" if unknown else ""))

    if args.record:
        if "kafka" not in results:
            log("--record: nothing recorded")
        elif args.case:
            log("--record with --case: refusing to save a partial expectations file")
            rc = 2
        else:
            with open(EXPECTED_FILE, "w") as f:
                json.dump({"broker": "Apache Kafka 4.4.0 (tests/kafka_ref)",
                           "socket.request.max.bytes": MAX_REQUEST_BYTES,
                           "generated_by": "tests/bad_input/check.py --kafka-only --record",
                           "cases": kafka}, f, indent=1, sort_keys=True)
                f.write("\n")
            log("saved %d Kafka outcomes to %s" % (len(kafka), os.path.relpath(EXPECTED_FILE, REPO)))
    if kafka and any(o.get("status") not in (None, "ok") for o in kafka.values() if o):
        log("some Kafka-side checks failed (see the table)")
        if "kafka" in results:
            rc = rc or 1
    if mismatches:
        log("%d mismatch(es)" % mismatches)
        rc = rc or 1
    if args.keep:
        log("work directory kept: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
