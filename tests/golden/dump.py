#!/usr/bin/env python3
"""Summarise a golden recording made by record_proxy.py.

Prints the number of requests and responses per (api key, api version), and
checks the file's framing: every record complete, kinds 0/1 only, every
response's correlation id equal to that of an earlier request with the same
api key and version. Exits 1 if the file is malformed.

Usage: dump.py [--list] [--specs DIR] FILE...
"""

import argparse
import collections
import glob
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_CANDIDATES = [
    os.path.join(HERE, "..", "..", "..", "shared", "kafka-protocol", "messages"),
    os.path.join(HERE, "..", "..", "shared", "kafka-protocol", "messages"),
]


def load_api_names(spec_dir):
    names = {}
    dirs = [spec_dir] if spec_dir else SPEC_CANDIDATES
    for d in dirs:
        for path in glob.glob(os.path.join(d, "*Request.json")):
            with open(path, encoding="utf-8") as f:
                text = re.sub(r"^\s*//.*$", "", f.read(), flags=re.M)
            try:
                spec = json.loads(text)
            except ValueError:
                continue
            if "apiKey" in spec:
                names[spec["apiKey"]] = spec["name"][: -len("Request")]
        if names:
            break
    return names


def read_records(path):
    """Yields (offset, kind, api_key, api_version, payload)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        if len(data) - pos < 9:
            raise ValueError("%s: truncated record header at offset %d" % (path, pos))
        kind, key, ver, length = struct.unpack_from(">BhhI", data, pos)
        if kind not in (0, 1):
            raise ValueError("%s: bad kind %d at offset %d" % (path, kind, pos))
        if len(data) - pos - 9 < length:
            raise ValueError("%s: truncated payload at offset %d" % (path, pos))
        yield pos, kind, key, ver, data[pos + 9: pos + 9 + length]
        pos += 9 + length


def summarise(path, names, listing):
    counts = collections.Counter()
    seen_requests = set()  # (corr, key, ver) of requests seen so far
    problems = 0
    total = 0
    for off, kind, key, ver, payload in read_records(path):
        total += 1
        if kind == 0:
            if len(payload) < 8:
                raise ValueError("%s: short request at offset %d" % (path, off))
            hkey, hver, corr = struct.unpack_from(">hhi", payload, 0)
            if (hkey, hver) != (key, ver):
                raise ValueError("%s: request header disagrees with record at offset %d"
                                 % (path, off))
            seen_requests.add((corr, key, ver))
        else:
            if len(payload) < 4:
                raise ValueError("%s: short response at offset %d" % (path, off))
            (corr,) = struct.unpack_from(">i", payload, 0)
            if (corr, key, ver) not in seen_requests:
                problems += 1
                print("%s: response at offset %d (corr %d) has no earlier request"
                      % (path, off, corr), file=sys.stderr)
        counts[(key, ver, kind)] += 1
        if listing:
            print("%8d %-8s %-28s v%-2d corr=%-6d %6d bytes"
                  % (off, "request" if kind == 0 else "response",
                     names.get(key, "api%d" % key), ver, corr, len(payload)))

    size = os.path.getsize(path)
    print("%s: %d records, %d bytes" % (path, total, size))
    print("  %-4s %-30s %-4s %8s %9s" % ("key", "api", "ver", "requests", "responses"))
    for key, ver in sorted({(k, v) for k, v, _ in counts}):
        print("  %-4d %-30s %-4d %8d %9d" % (key, names.get(key, "?"), ver,
                                           counts[(key, ver, 0)], counts[(key, ver, 1)]))
    return problems == 0


def main():
    ap = argparse.ArgumentParser(description="Summarise golden Kafka recordings")
    ap.add_argument("--list", action="store_true", help="print every record")
    ap.add_argument("--specs", help="directory of Kafka message JSON specs (for API names)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    names = load_api_names(args.specs)
    ok = True
    for path in args.files:
        try:
            ok = summarise(path, names, args.list) and ok
        except ValueError as e:
            print("dump: %s" % e, file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
