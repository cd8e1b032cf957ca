#!/usr/bin/env python3
"""A kafka-python session recorded by record.sh: admin create/describe, produce
with every codec (keys and headers), plain consume, consumer-group consume.

Usage: kafka_python_session.py BOOTSTRAP
Exits non-zero if anything read back differs from what was produced.
"""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TOPIC = "kpy-golden"
GROUP = "kpy-group"
PER_CODEC = 4


def main():
    bootstrap = sys.argv[1]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kpy-admin")
    admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
    admin.describe_topics([TOPIC])
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])

    expected = []
    for codec in CODECS:
        producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="kpy-producer-" + codec,
                                 compression_type=None if codec == "none" else codec,
                                 linger_ms=50, acks="all")
        for i in range(PER_CODEC):
            key = ("%s-key-%d" % (codec, i)).encode()
            value = ("%s value %d " % (codec, i) * (1 + 5 * i)).encode()
            headers = [("codec", codec.encode()), ("index", str(i).encode())]
            producer.send(TOPIC, key=key, value=value, headers=headers)
            expected.append((key, value))
        producer.flush()
        producer.close()

    # Plain consumer: assign + seek to beginning, no group.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="kpy-consumer",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    parts = [TopicPartition(TOPIC, p) for p in (0, 1)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    got = [(m.key, m.value) for m in consumer]
    consumer.close()
    if sorted(got) != sorted(expected):
        sys.exit("kafka_python_session: plain consume got %d records, expected %d"
                 % (len(got), len(expected)))

    # Consumer group: subscribe, read everything, commit.
    consumer = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, client_id="kpy-group-consumer",
                             group_id=GROUP, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    got = []
    deadline = time.time() + 30
    while len(got) < len(expected) and time.time() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            got.extend((m.key, m.value) for m in recs)
    consumer.commit()
    consumer.close()
    if sorted(got) != sorted(expected):
        sys.exit("kafka_python_session: group consume got %d records, expected %d"
                 % (len(got), len(expected)))

    admin.list_groups()
    admin.describe_groups([GROUP])
    admin.list_group_offsets(GROUP)
    admin.describe_cluster()
    admin.close()
    print("kafka_python_session: ok (%d records)" % len(expected))


if __name__ == "__main__":
    main()
