#!/usr/bin/env python3
"""kcat suite: drives Debian's kcat (librdkafka 2.0.2) as a subprocess.

kcat limits, handled here (the rest of records.txt is used byte for byte):
- no per-record timestamps or headers: records are produced in runs that share
  partition and headers (one kcat -P per run, -H per header); timestamps are the
  client's CreateTime, read back and used for the timestamp lookup;
- header values travel through argv (no NUL bytes) and come back only through -J
  (JSON, not binary safe): a header value that is not printable UTF-8 is sent as its
  hex text instead;
- a null value needs -Z (which also turns empty values into null), so null-value
  records are produced in runs of their own."""
import json
import os
import subprocess
import sys
import time

import itlib

SUITE = "kcat"
KCAT = os.environ.get("KCAT", "kcat")
BOOTSTRAP, METRICS_URL, BROKER = itlib.env()
KEY_DELIM = b"<<fjord-it-key>>"
MSG_DELIM = b"<<fjord-it-end>>"


def kcat(*args, stdin=None, timeout=60):
    cmd = [KCAT, "-b", BOOTSTRAP, "-q"] + list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("%r exited %d: %s" % (cmd, p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return p.stdout


def printable(v):
    try:
        return v is None or (b"\x00" not in v and v.decode("utf-8").isprintable())
    except UnicodeDecodeError:
        return False


def kcat_records():
    records = itlib.load_records()
    for r in records:
        r.headers = [(n, v if printable(v) else v.hex().encode()) for n, v in r.headers]
    return records


def create_topic(name):
    """The one topic-creation step. kcat has no admin API: auto-creation through a
    metadata request (kcat -L -t asks for the topic)."""
    def ready():
        md = json.loads(kcat("-L", "-J", "-t", name, timeout=20))
        t = [t for t in md["topics"] if t["topic"] == name]
        return (t and "error" not in t[0] and len(t[0]["partitions"]) == itlib.PARTITIONS
                and all(p["leader"] >= 0 for p in t[0]["partitions"]))
    itlib.wait_until("topic %s with %d partitions" % (name, itlib.PARTITIONS), ready)


def produce(topic, codec, records):
    runs = []
    for r in records:
        key = (r.partition, tuple(r.headers), r.value is None)
        if runs and runs[-1][0] == key:
            runs[-1][1].append(r)
        else:
            runs.append((key, [r]))
    for (partition, headers, null_value), rs in runs:
        args = ["-P", "-t", topic, "-p", str(partition), "-z", codec,
                "-K", KEY_DELIM.decode(), "-D", MSG_DELIM.decode()]
        for n, v in headers:
            args += ["-H", n if v is None else n + "=" + v.decode()]
        if null_value:
            args.append("-Z")
        data = b""
        for r in rs:
            assert KEY_DELIM not in (r.value or b"") and MSG_DELIM not in (r.value or b"")
            data += (b"" if r.key is None else r.key + KEY_DELIM) + (r.value or b"") + MSG_DELIM
        kcat(*args, stdin=data)
        time.sleep(0.01)  # distinct CreateTime between runs


def consume(topic, partition, offset_spec):
    """Records of one partition from offset_spec (-o) to its end; [(offset, Rec)]."""
    base = ["-C", "-t", topic, "-p", str(partition), "-o", str(offset_spec), "-e", "-X", "fetch.wait.max.ms=100"]
    raw = kcat(*base, "-f", "%o %T %K %S\n%k%s\n")  # binary safe: lengths, then the bytes
    out = []
    pos = 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        off, ts, klen, vlen = (int(x) for x in raw[pos:nl].split())
        pos = nl + 1
        key = None if klen < 0 else raw[pos:pos + klen]
        pos += max(klen, 0)
        value = None if vlen < 0 else raw[pos:pos + vlen]
        pos += max(vlen, 0)
        assert raw[pos:pos + 1] == b"\n", "bad kcat output framing at %d" % pos
        pos += 1
        out.append((off, itlib.Rec(partition, key, value, [], ts)))
    # headers only through -J: ["name", "value"|null, ...]
    # (keys and values may be binary: not UTF-8, so decoded loosely; only headers are used)
    lines = [l.decode("utf-8", "surrogateescape") for l in kcat(*base, "-J").split(b"\n") if l]
    assert len(lines) == len(out), "kcat -J returned %d records, -f %d" % (len(lines), len(out))
    for (off, rec), line in zip(out, lines):
        j = json.loads(line)
        assert j["offset"] == off and j["partition"] == partition
        h = j.get("headers") or []
        rec.headers = [(h[i], None if h[i + 1] is None else h[i + 1].encode()) for i in range(0, len(h), 2)]
    return out


def read(topic, partition, offset_spec, first):
    got = consume(topic, partition, offset_spec)
    offsets = [o for o, _ in got]
    assert offsets == list(range(first, first + len(got))), "p%d offsets %r from %s" % (partition, offsets, offset_spec)
    return [r for _, r in got]


def check_codec(codec):
    topic = itlib.topic_name(SUITE, codec)
    records = kcat_records()
    create_topic(topic)
    produce(topic, codec, records)
    for p, expected in itlib.by_partition(records).items():
        got = read(topic, p, "beginning", 0)
        itlib.assert_same("p%d from the beginning" % p, got, expected)
        for r, g in zip(expected, got):
            r.timestamp = g.timestamp  # the client's CreateTime
        mid = len(expected) // 2
        itlib.assert_same("p%d from offset %d" % (p, mid), read(topic, p, mid, mid), expected[mid:])
        q, j = itlib.timestamp_query([r.timestamp for r in expected])
        # ListOffsets by timestamp (kcat -Q) and a consume from that timestamp (-o s@TS)
        answer = kcat("-Q", "-t", "%s:%d:%d" % (topic, p, q)).decode()
        assert answer.split() == [topic, "[%d]" % p, "offset", str(j)], "kcat -Q %d: %r, expected offset %d" % (
            q, answer, j)
        itlib.assert_same("p%d from timestamp %d" % (p, q), read(topic, p, "s@%d" % q, j), expected[j:])


if __name__ == "__main__":
    print("%s: %s" % (SUITE, subprocess.run([KCAT, "-V"], capture_output=True).stdout.decode().splitlines()[3]))
    sys.exit(itlib.run_tests(SUITE, [(codec, lambda codec=codec: check_codec(codec)) for codec in itlib.CODECS]))
