#!/usr/bin/env python3
"""Helper of make.sh: the known record set, and the kafka-python side.

  batches.py spec FILE                      write the record set for the C and Java producers
  batches.py create-topics BOOTSTRAP T...   create single-partition topics (compression.type=producer)
  batches.py produce BOOTSTRAP TOPIC CODEC  produce the record set with kafka-python
  batches.py check BOOTSTRAP TOPIC LOG JSON CLIENT CODEC [CLIENT_VERSION]
                                            consume TOPIC back and compare with the record set,
                                            check the segment file's batches, write JSON

Spec file format (one record per line, tab-separated, '-' = null, else hex):
  KEY  VALUE  HEADERS     HEADERS: '' or hexkey:hexvalue[,hexkey:hexvalue...]
A line containing only 'FLUSH' marks where the producer flushes (a batch boundary).
"""

import json
import os
import struct
import sys
import time

# ---------------------------------------------------------------- record set

FLUSH_AFTER = 12  # producers flush after the first 12 records, then after the rest


def _text(n, seed):
    """n characters of deterministic, not too repetitive text."""
    words = ["kafka", "fjord", "batch", "record", "offset", "segment", "leader", "epoch",
             "broker", "replica", "fetch", "produce", "commit", "group", "topic", "zstd",
             "snappy", "gzip", "lz4", "crc32c", "varint", "header", "timestamp", "delta"]
    out = []
    x = seed
    size = 0
    while size < n:
        x = (x * 1103515245 + 12345) % 2147483648  # simple LCG, stable across runs
        w = words[(x >> 16) % len(words)]
        if (x >> 8) % 5 == 0:
            w += str((x >> 4) % 1000)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def records():
    """20 records: (key, value, headers); key/value str or None; headers list of (str, str)."""
    r = [
        ("key-00", "v", []),
        (None, "value with a null key", []),
        ("key-02", "", []),                        # empty value
        ("key-03", None, []),                      # null value (tombstone)
        ("", "value with an empty key", []),       # empty key
        ("key-05", _text(1000, 5), []),
        ("key-06", "two headers", [("h1", "header value 1"), ("h2", "header value 2")]),
        (None, "", []),                            # null key, empty value (kafka-python refuses both null)
        ("key-08", "empty header value", [("empty", "")]),
        ("key-09", _text(10, 9), []),
        ("key-10", _text(100, 10), []),
        ("key-11", "end of first flush", [("flush", "1")]),
        ("key-12", _text(5000, 12), []),
        ("k\u00e9y-13", "unicode \u00fcn\u00efc\u00f6d\u00e9 \u2713", []),
        ("key-14", "x" * 300, []),
        ("key-15", _text(50, 15), [("trace-id", "0123456789abcdef"), ("span", "42")]),
        ("key-16", "", []),
        ("key-17", _text(2000, 17), []),
        ("key-18", None, []),
        ("key-19", "last record", [("flush", "2")]),
    ]
    assert len(r) == 20
    return r


def _hex(s):
    return "-" if s is None else s.encode("utf-8").hex()


def write_spec(path):
    with open(path, "w") as f:
        for i, (k, v, hs) in enumerate(records()):
            hdr = ",".join("%s:%s" % (_hex(hk), _hex(hv)) for hk, hv in hs)
            f.write("%s\t%s\t%s\n" % (_hex(k), _hex(v), hdr))
            if i + 1 == FLUSH_AFTER:
                f.write("FLUSH\n")


def _b(s):
    return None if s is None else s.encode("utf-8")


# ---------------------------------------------------------------- kafka-python side

def create_topics(bootstrap, topics):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1,
                                  topic_configs={"compression.type": "producer"})
                         for t in topics])
    admin.close()


def produce(bootstrap, topic, codec):
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=100,
                             compression_type=None if codec == "none" else codec)
    for i, (k, v, hs) in enumerate(records()):
        producer.send(topic, key=_b(k), value=_b(v), partition=0,
                      headers=[(hk, _b(hv)) for hk, hv in hs])
        if i + 1 == FLUSH_AFTER:
            producer.flush()
    producer.flush()
    producer.close()


CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
from crc32c import crc32c  # noqa: E402


def parse_segment(path):
    """Returns a list of batch summaries; raises ValueError if malformed."""
    with open(path, "rb") as f:
        data = f.read()
    batches = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 61:
            raise ValueError("truncated batch header at %d" % pos)
        base_offset, length, _epoch, magic, crc = struct.unpack_from(">qiibI", data, pos)
        if magic != 2:
            raise ValueError("batch at %d has magic %d" % (pos, magic))
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("truncated batch at %d" % pos)
        if crc32c(data[pos + 21:end]) != crc:
            raise ValueError("bad CRC32C in batch at %d" % pos)
        attributes, last_delta = struct.unpack_from(">hi", data, pos + 21)
        producer_id, producer_epoch, base_seq, count = struct.unpack_from(">qhii", data, pos + 43)
        batches.append({"base_offset": base_offset, "bytes": 12 + length, "records": count,
                        "last_offset_delta": last_delta, "codec": attributes & 7,
                        "attributes": attributes, "producer_id": producer_id,
                        "producer_epoch": producer_epoch, "base_sequence": base_seq})
        pos = end
    return batches


def check(bootstrap, topic, log_path, json_path, client, codec, client_version=""):
    from kafka import KafkaConsumer, TopicPartition
    expected = records()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    deadline = time.time() + 30
    while len(got) < len(expected) and time.time() < deadline:
        for msgs in consumer.poll(timeout_ms=500).values():
            got.extend(msgs)
    consumer.close()
    problems = []
    if len(got) != len(expected):
        problems.append("consumed %d records, expected %d" % (len(got), len(expected)))
    for i, (m, (k, v, hs)) in enumerate(zip(got, expected)):
        want = (i, _b(k), _b(v), [(hk, _b(hv)) for hk, hv in hs])
        have = (m.offset, m.key, m.value, [(hk, hv) for hk, hv in (m.headers or [])])
        if want != have:
            problems.append("record %d: got %r, expected %r" % (i, have, want))

    batches = parse_segment(log_path)
    if sum(b["records"] for b in batches) != len(expected):
        problems.append("segment holds %d records" % sum(b["records"] for b in batches))
    if any(b["codec"] != CODEC_IDS[codec] for b in batches):
        problems.append("segment batches have codecs %s, expected %s"
                        % ([b["codec"] for b in batches], codec))
    if len(batches) < 2:
        problems.append("expected at least 2 batches (one per flush), got %d" % len(batches))
    if max(b["records"] for b in batches) < 2:
        problems.append("no batch holds more than one record")
    if problems:
        for p in problems:
            print("check %s: %s" % (topic, p), file=sys.stderr)
        sys.exit(1)

    doc = {
        "client": client,
        "client_version": client_version,
        "codec": codec,
        "topic": topic,
        "partition": 0,
        "note": "Kafka segment file; batches as written by the client except base offset "
                "and partition leader epoch (set by the broker).",
        "batches": [{k: b[k] for k in ("base_offset", "records", "bytes", "attributes",
                                       "producer_id", "producer_epoch", "base_sequence")}
                    for b in batches],
        "records": [{"offset": i, "key": k, "value": v,
                     "headers": [[hk, hv] for hk, hv in hs]}
                    for i, (k, v, hs) in enumerate(expected)],
    }
    # one batch / record per line: small, readable diffs
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    for key in ("batches", "records"):
        compact = ",\n  ".join(json.dumps(x, ensure_ascii=False) for x in doc[key])
        text = text.replace(json.dumps(doc[key], indent=1, ensure_ascii=False).replace("\n", "\n "),
                            "[\n  " + compact + "\n ]")
    if json.loads(text) != doc:
        raise AssertionError("JSON formatting changed the document")
    with open(json_path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print("%s: %d batches %s, %d bytes" % (topic, len(batches),
                                          [b["records"] for b in batches],
                                          sum(b["bytes"] for b in batches)))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "spec":
        write_spec(args[0])
    elif cmd == "create-topics":
        create_topics(args[0], args[1:])
    elif cmd == "produce":
        produce(*args)
    elif cmd == "check":
        check(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
