#!/usr/bin/env python3
"""confluent-kafka (librdkafka) suite. Run by Debian's python3 with Debian's
python3-confluent-kafka on librdkafka 2.0.2 (client "confluent-debian"), and by the
venv with the package index's confluent-kafka and its bundled librdkafka ("confluent-pypi")."""
import sys
import time

import confluent_kafka
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import itlib

SUITE = sys.argv[1] if len(sys.argv) > 1 else "confluent"
BOOTSTRAP, METRICS_URL, BROKER = itlib.env()


def create_topic(name):
    """The one topic-creation step: admin CreateTopics, or auto-creation via metadata."""
    if itlib.topic_mode() == "admin":
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})  # must outlive the future
        admin.create_topics([NewTopic(name, num_partitions=itlib.PARTITIONS, replication_factor=1)])[name].result(30)
    p = Producer({"bootstrap.servers": BOOTSTRAP})

    def ready():
        md = p.list_topics(name, timeout=5).topics.get(name)
        return (md is not None and md.error is None and len(md.partitions) == itlib.PARTITIONS
                and all(pm.leader >= 0 for pm in md.partitions.values()))
    itlib.wait_until("topic %s with %d partitions" % (name, itlib.PARTITIONS), ready)


def produce(topic, codec, records):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": codec, "linger.ms": 100})
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset()))

    for r in records:
        kw = {"headers": r.headers} if r.headers else {}
        p.produce(topic, value=r.value, key=r.key, partition=r.partition, timestamp=r.timestamp,
                  on_delivery=on_delivery, **kw)
    left = p.flush(30)
    assert left == 0, "%d messages not delivered" % left
    errors = [e for e, _, _ in reports if e is not None]
    assert not errors, "delivery errors: %r" % errors[:3]
    next_offset = {}
    for (err, part, off) in reports:  # per partition, offsets 0, 1, 2, ... in produce order
        assert off == next_offset.get(part, 0), "partition %d: offset %d, expected %d" % (
            part, off, next_offset.get(part, 0))
        next_offset[part] = off + 1


def consumer():
    return Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "fjord-it-" + SUITE,
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "fetch.wait.max.ms": 100})


def read(c, topic, partition, offset):
    """Records of one partition from offset up to the end (partition EOF)."""
    c.assign([TopicPartition(topic, partition, offset)])
    out = []
    deadline = time.time() + 30
    while time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                break
            raise AssertionError("consume error: %s" % m.error())
        assert m.partition() == partition
        assert m.offset() == offset + len(out), "offset %d, expected %d" % (m.offset(), offset + len(out))
        out.append(itlib.Rec(partition, m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
    else:
        raise AssertionError("no end of partition %d within 30 s (%d records read)" % (partition, len(out)))
    c.unassign()
    return out


def check_codec(codec):
    topic = itlib.topic_name(SUITE, codec)
    records = itlib.with_timestamps(itlib.load_records())
    create_topic(topic)
    produce(topic, codec, records)
    c = consumer()
    try:
        for p, expected in itlib.by_partition(records).items():
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            assert (lo, hi) == (0, len(expected)), "p%d watermarks %r, expected (0, %d)" % (p, (lo, hi), len(expected))
            itlib.assert_same("p%d from the beginning" % p, read(c, topic, p, 0), expected)
            mid = len(expected) // 2
            itlib.assert_same("p%d from offset %d" % (p, mid), read(c, topic, p, mid), expected[mid:])
            q, j = itlib.timestamp_query([r.timestamp for r in expected])
            found = c.offsets_for_times([TopicPartition(topic, p, q)], timeout=10)[0]
            assert found.error is None and found.offset == j, "p%d offsets_for_times(%d) = %r, expected offset %d" % (
                p, q, found, j)
            itlib.assert_same("p%d from timestamp %d" % (p, q), read(c, topic, p, found.offset), expected[j:])
    finally:
        c.close()


if __name__ == "__main__":
    version = confluent_kafka.version()
    version = version[0] if isinstance(version, tuple) else version
    print("%s: confluent-kafka %s, librdkafka %s" % (SUITE, version, confluent_kafka.libversion()[0]))
    sys.exit(itlib.run_tests(SUITE, [(codec, lambda codec=codec: check_codec(codec)) for codec in itlib.CODECS]))
