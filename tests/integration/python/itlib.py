"""Shared helpers of the Python-driven client suites (kcat, confluent-kafka, kafka-python).

Standard library only: runs under Debian's /usr/bin/python3 and under the suite's venv."""
import os
import re
import sys
import time
import traceback
import urllib.request

IT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3


class Rec:
    """One record: partition, key/value bytes or None, headers [(name str, value bytes|None)]."""

    __slots__ = ("partition", "key", "value", "headers", "timestamp")

    def __init__(self, partition, key, value, headers, timestamp=None):
        self.partition, self.key, self.value = partition, key, value
        self.headers, self.timestamp = list(headers), timestamp

    def data(self):
        return (self.key, self.value, tuple(self.headers))

    def __repr__(self):
        def short(b):
            if b is None:
                return "null"
            return repr(b if len(b) <= 40 else b[:40] + b"...(%d bytes)" % len(b))
        hs = ", ".join("%s=%s" % (n, short(v)) for n, v in self.headers)
        return "<p%d key=%s value=%s headers=[%s] ts=%s>" % (
            self.partition, short(self.key), short(self.value), hs, self.timestamp)


def _bytes(tok):
    if tok == "~":
        return None
    if tok == ".":
        return b""
    hexpart, _, count = tok.partition("*")
    return bytes.fromhex(hexpart) * (int(count) if count else 1)


def load_records(path=None):
    """Parses records.txt (format described at its top)."""
    path = path or os.path.join(IT_DIR, "records.txt")
    out = []
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            headers = []
            for h in line[3:]:
                name, _, value = h.partition("=")
                headers.append((_bytes(name).decode("utf-8"), _bytes(value)))
            out.append(Rec(int(line[0]), _bytes(line[1]), _bytes(line[2]), headers))
    return out


def with_timestamps(records, base=None):
    """Explicit CreateTime timestamps: 1 s apart, starting 10 minutes ago."""
    base = base or (int(time.time() * 1000) // 1000 * 1000 - 600_000)
    for i, r in enumerate(records):
        r.timestamp = base + 1000 * i
    return records


def by_partition(records):
    parts = {p: [] for p in range(PARTITIONS)}
    for r in records:
        parts[r.partition].append(r)
    return parts


def assert_same(what, got, expected, check_ts=True):
    """got/expected: lists of Rec in offset order; exact keys, values, headers (and timestamps)."""
    for i, (g, e) in enumerate(zip(got, expected)):
        if g.data() != e.data():
            raise AssertionError("%s: record %d differs:\n  got      %r\n  expected %r" % (what, i, g, e))
        if check_ts and e.timestamp is not None and g.timestamp != e.timestamp:
            raise AssertionError("%s: record %d timestamp %s, expected %s" % (what, i, g.timestamp, e.timestamp))
    if len(got) != len(expected):
        raise AssertionError("%s: got %d records, expected %d (first extra/missing: %r)" % (
            what, len(got), len(expected), (got[len(expected):] or expected[len(got):])[:1]))


def timestamp_query(timestamps):
    """A timestamp strictly between two produced records' timestamps, and the offset
    ListOffsets must answer for it (the first record whose timestamp is >= it)."""
    n = len(timestamps)
    for j in range(max(1, n // 2), n):
        if timestamps[j] > timestamps[j - 1] + 1:
            q = (timestamps[j - 1] + timestamps[j]) // 2 + 1
            if timestamps[j - 1] < q <= timestamps[j]:
                return q, j
    raise AssertionError("no two consecutive records with distinct timestamps: %r" % timestamps)


def env():
    bootstrap = os.environ.get("FJORD_IT_BOOTSTRAP")
    if not bootstrap:
        sys.exit("FJORD_IT_BOOTSTRAP is not set (run through tests/integration/run.sh)")
    return bootstrap, os.environ.get("FJORD_IT_METRICS_URL", ""), os.environ.get("FJORD_IT_BROKER", "fjord")


def topic_mode():
    """How topics are made: 'auto' (auto-creation through the client's metadata/produce
    requests; the default while Fjord lacks CreateTopics) or 'admin' (the client's admin API)."""
    mode = os.environ.get("FJORD_IT_TOPICS", "auto")
    assert mode in ("auto", "admin"), "FJORD_IT_TOPICS must be auto or admin"
    return mode


def metric(url, name, labels):
    """Sum of a Prometheus counter's samples whose labels include `labels`."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^%s(\{[^}]*\})?\s+(\S+)" % re.escape(name), line)
        if m and all('%s="%s"' % kv in (m.group(1) or "") for kv in labels.items()):
            total += float(m.group(2))
    return total


def wait_until(what, fn, timeout=30.0, interval=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last error: %r)" % (what, last))


def run_tests(suite, tests):
    """tests: [(name, fn)]. Prints one line per test and the closing 'N passed, N failed'."""
    only = os.environ.get("FJORD_IT_ONLY")
    passed = failed = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        t0 = time.time()
        try:
            fn()
        except Exception:  # noqa: BLE001
            failed += 1
            print("FAIL %s: %s (%.1fs)" % (suite, name, time.time() - t0), flush=True)
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("ok   %s: %s (%.1fs)" % (suite, name, time.time() - t0), flush=True)
    print("%s: %d passed, %d failed" % (suite, passed, failed), flush=True)
    return 0 if failed == 0 and passed > 0 else 1


def null_header_values_as_empty(records):
    """For clients that cannot send a null header value: send (and expect) an empty one."""
    for r in records:
        r.headers = [(n, b"" if v is None else v) for n, v in r.headers]
    return records


RUN_ID = os.environ.get("FJORD_IT_RUN_ID") or "%x" % int(time.time() * 1000)


def topic_name(suite, codec):
    """it.<suite>.<codec>.<run id>: a re-run against the same broker gets new topics."""
    return "it.%s.%s.%s" % (suite, codec, RUN_ID)
