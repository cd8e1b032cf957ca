#!/usr/bin/env python3
"""kafka-python suite (pure Python client; codecs from python-snappy/cramjam, lz4, zstandard)."""
import sys

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

import itlib

SUITE = "kafka-python"
BOOTSTRAP, METRICS_URL, BROKER = itlib.env()


def create_topic(name):
    """The one topic-creation step: admin CreateTopics, or auto-creation via metadata."""
    if itlib.topic_mode() == "admin":
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        admin.create_topics([NewTopic(name, itlib.PARTITIONS, 1)])
        admin.close()
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    try:
        def ready():
            parts = p.partitions_for(name)  # a metadata request that auto-creates the topic
            return parts is not None and len(parts) == itlib.PARTITIONS
        itlib.wait_until("topic %s with %d partitions" % (name, itlib.PARTITIONS), ready)
    finally:
        p.close()


def produce(topic, codec, records):
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=None if codec == "none" else codec,
                      linger_ms=100)
    futures = [p.send(topic, value=r.value, key=r.key, partition=r.partition, timestamp_ms=r.timestamp,
                      headers=r.headers) for r in records]
    p.flush(30)
    next_offset = {}
    for f in futures:
        md = f.get(timeout=30)
        assert md.offset == next_offset.get(md.partition, 0), "p%d: offset %d, expected %d" % (
            md.partition, md.offset, next_offset.get(md.partition, 0))
        next_offset[md.partition] = md.offset + 1
    p.close()


def read(c, topic, partition, offset, count):
    """`count` records of one partition from offset; then checks that nothing follows."""
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.seek(tp, offset)
    out = []
    for _ in range(60):
        for m in c.poll(timeout_ms=500).get(tp, []):
            assert m.offset == offset + len(out), "offset %d, expected %d" % (m.offset, offset + len(out))
            out.append(itlib.Rec(partition, m.key, m.value, [(k, v) for k, v in m.headers], m.timestamp))
        if len(out) >= count:
            break
    assert c.position(tp) == offset + len(out), "position %d after %d records" % (c.position(tp), len(out))
    return out


def check_codec(codec):
    topic = itlib.topic_name(SUITE, codec)
    # kafka-python's send() accepts only (str, bytes) headers: no null header value.
    records = itlib.null_header_values_as_empty(itlib.with_timestamps(itlib.load_records()))
    create_topic(topic)
    produce(topic, codec, records)
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    try:
        for p, expected in itlib.by_partition(records).items():
            tp = TopicPartition(topic, p)
            assert c.beginning_offsets([tp])[tp] == 0
            assert c.end_offsets([tp])[tp] == len(expected), "p%d end offset %d, expected %d" % (
                p, c.end_offsets([tp])[tp], len(expected))
            itlib.assert_same("p%d from the beginning" % p, read(c, topic, p, 0, len(expected)), expected)
            mid = len(expected) // 2
            itlib.assert_same("p%d from offset %d" % (p, mid), read(c, topic, p, mid, len(expected) - mid),
                              expected[mid:])
            q, j = itlib.timestamp_query([r.timestamp for r in expected])
            found = c.offsets_for_times({tp: q})[tp]
            assert found is not None and found.offset == j, "p%d offsets_for_times(%d) = %r, expected offset %d" % (
                p, q, found, j)
            assert found.timestamp == expected[j].timestamp, "p%d offsets_for_times timestamp %r" % (p, found)
            itlib.assert_same("p%d from timestamp %d" % (p, q), read(c, topic, p, j, len(expected) - j), expected[j:])
    finally:
        c.close()


if __name__ == "__main__":
    print("%s: kafka-python %s" % (SUITE, kafka.__version__))
    sys.exit(itlib.run_tests(SUITE, [(codec, lambda codec=codec: check_codec(codec)) for codec in itlib.CODECS]))
