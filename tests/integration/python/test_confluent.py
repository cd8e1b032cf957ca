#!/usr/bin/env python3
"""confluent-kafka (librdkafka) suite. Run by Debian's python3 with Debian's
python3-confluent-kafka on librdkafka 2.0.2 (client "confluent-debian"), and by the
venv with the package index's confluent-kafka and its bundled librdkafka ("confluent-pypi")."""
import sys
import time
import warnings

import confluent_kafka
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewPartitions, NewTopic

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


def can(admin, method):
    """Whether this module has an admin call. Debian's 1.7.0 lacks the newer ones and
    says so; the package index's build must have them all (a missing one fails)."""
    if hasattr(admin, method):
        return True
    if SUITE != "confluent-debian":
        raise AssertionError("confluent-kafka %s has no AdminClient.%s" % (confluent_kafka.version()[0], method))
    print("skip %s: AdminClient.%s (not in confluent-kafka %s)" % (SUITE, method, confluent_kafka.version()[0]), flush=True)
    return False


def expect_error(what, code, fn):
    try:
        got = fn()
    except KafkaException as e:
        err = e.args[0]
        assert err.code() == code, "%s: %s, expected %s" % (what, err, KafkaError(code).name())
        return
    raise AssertionError("%s: succeeded (%r), expected %s" % (what, got, KafkaError(code).name()))


def source(entry):
    return ConfigSource(getattr(entry.source, "value", entry.source))


def topic_configs(admin, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result(30)


def partitions(admin, topic):
    md = admin.list_topics(timeout=10).topics.get(topic)
    return None if md is None else len(md.partitions)


def check_admin():
    """confluent-kafka's AdminClient: create_topics, list_topics, describe_configs,
    alter_configs, incremental_alter_configs, create_partitions, delete_records,
    list_offsets, describe_cluster, delete_topics, each with Kafka 4.4's answer."""
    a, b, v = (itlib.topic_name(SUITE, "admin-" + x) for x in ("a", "b", "validate"))
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    md = admin.list_topics(timeout=10)
    assert len(md.brokers) == 1, "list_topics: brokers %r" % md.brokers
    node = next(iter(md.brokers))

    # create_topics: partitions and configs, validate_only, errors, one result per topic.
    fs = admin.create_topics([NewTopic(a, 2, 1, config={"retention.ms": "3600000", "cleanup.policy": "delete"}),
                              NewTopic(b, 1, 1)], operation_timeout=30)
    assert sorted(fs) == sorted([a, b]), "create_topics results for %r" % sorted(fs)
    for t, f in fs.items():
        assert f.result(30) is None, "create_topics %s" % t
    expect_error("create_topics of an existing topic", KafkaError.TOPIC_ALREADY_EXISTS,
                 lambda: admin.create_topics([NewTopic(a, 1, 1)])[a].result(30))
    expect_error("create_topics with replication factor 3 on one node", KafkaError.INVALID_REPLICATION_FACTOR,
                 lambda: admin.create_topics([NewTopic(v, 1, 3)])[v].result(30))
    assert admin.create_topics([NewTopic(v, 5, 1)], validate_only=True)[v].result(30) is None
    itlib.wait_until("%s and %s in list_topics" % (a, b), lambda: partitions(admin, a) == 2 and partitions(admin, b) == 1)
    assert partitions(admin, v) is None, "create_topics validate_only created %s" % v
    for pm in admin.list_topics(timeout=10).topics[a].partitions.values():
        assert pm.leader == node and pm.replicas == [node] and pm.isrs == [node], "list_topics %s: %r" % (a, vars(pm))

    # describe_configs: the topic's own setting and a default; the broker's.
    cfg = topic_configs(admin, a)
    e = cfg["retention.ms"]
    assert e.value == "3600000" and source(e) == ConfigSource.DYNAMIC_TOPIC_CONFIG and not e.is_default \
        and not e.is_read_only and not e.is_sensitive, "describe_configs %s: %r" % (a, e)
    e = cfg["segment.bytes"]
    assert e.value == "1073741824" and source(e) == ConfigSource.DEFAULT_CONFIG and e.is_default, repr(e)
    res = ConfigResource(ConfigResource.Type.BROKER, str(node))
    bcfg = admin.describe_configs([res])[res].result(30)
    e = bcfg["num.partitions"]
    assert e.value == "3" and source(e) == ConfigSource.STATIC_BROKER_CONFIG, "describe_configs broker: %r" % e
    e = bcfg["log.retention.hours"]
    assert e.value == "168" and source(e) == ConfigSource.DEFAULT_CONFIG, "describe_configs broker: %r" % e

    # alter_configs (AlterConfigs) replaces the topic's whole set.
    res = ConfigResource(ConfigResource.Type.TOPIC, a, set_config={"retention.ms": "5400000"})
    with warnings.catch_warnings():  # deprecated in 2.x, the only way in 1.7.0
        warnings.simplefilter("ignore", DeprecationWarning)
        assert admin.alter_configs([res])[res].result(30) is None
    cfg = topic_configs(admin, a)
    assert cfg["retention.ms"].value == "5400000", "after alter_configs: %r" % cfg["retention.ms"]
    assert source(cfg["cleanup.policy"]) == ConfigSource.DEFAULT_CONFIG, "after alter_configs: %r" % cfg["cleanup.policy"]
    if can(admin, "incremental_alter_configs"):
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

        def incremental(*entries):
            r = ConfigResource(ConfigResource.Type.TOPIC, a, incremental_configs=list(entries))
            return admin.incremental_alter_configs([r])[r].result(30)
        incremental(ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
                    ConfigEntry("max.message.bytes", "500000", incremental_operation=AlterConfigOpType.SET))
        incremental(ConfigEntry("max.message.bytes", "", incremental_operation=AlterConfigOpType.DELETE))
        cfg = topic_configs(admin, a)
        assert cfg["retention.ms"].value == "7200000" and source(cfg["retention.ms"]) == \
            ConfigSource.DYNAMIC_TOPIC_CONFIG, "after incremental_alter_configs: %r" % cfg["retention.ms"]
        e = cfg["max.message.bytes"]
        assert e.value == "1048588" and source(e) == ConfigSource.DEFAULT_CONFIG, "after DELETE: %r" % e
        expect_error("incremental_alter_configs of an unknown config", KafkaError.INVALID_CONFIG,
                     lambda: incremental(ConfigEntry("no.such.config", "1",
                                                     incremental_operation=AlterConfigOpType.SET)))

    # create_partitions: grow to 4; shrinking is refused.
    assert admin.create_partitions([NewPartitions(a, 4)])[a].result(30) is None
    itlib.wait_until("%s with 4 partitions" % a, lambda: partitions(admin, a) == 4)
    expect_error("create_partitions to fewer partitions", KafkaError.INVALID_PARTITIONS,
                 lambda: admin.create_partitions([NewPartitions(a, 2)])[a].result(30))

    # 10 records in partition 0, then delete_records and list_offsets.
    p = Producer({"bootstrap.servers": BOOTSTRAP})
    t0 = int(time.time()) * 1000 - 60_000
    for i in range(10):
        p.produce(a, value=b"v%d" % i, partition=0, timestamp=t0 + 1000 * i)
    assert p.flush(30) == 0
    c = consumer()
    try:
        assert c.get_watermark_offsets(TopicPartition(a, 0), timeout=10) == (0, 10)
        if can(admin, "delete_records"):
            got = admin.delete_records([TopicPartition(a, 0, 4)])
            (f,) = got.values()
            assert f.result(30).low_watermark == 4, "delete_records: %r" % f.result(30)
            lo_hi = c.get_watermark_offsets(TopicPartition(a, 0), timeout=10)
            assert lo_hi == (4, 10), "watermarks after delete_records: %r" % (lo_hi,)
            expect_error("delete_records beyond the high watermark", KafkaError.OFFSET_OUT_OF_RANGE,
                         lambda: list(admin.delete_records([TopicPartition(a, 0, 11)]).values())[0].result(30))
        if can(admin, "list_offsets"):
            from confluent_kafka.admin import OffsetSpec
            tp = TopicPartition(a, 0)
            for spec, want in ((OffsetSpec.earliest(), 4), (OffsetSpec.latest(), 10),
                               (OffsetSpec.for_timestamp(t0 + 6500), 7), (OffsetSpec.max_timestamp(), 9)):
                r = admin.list_offsets({tp: spec})[tp].result(30)
                assert r.offset == want, "list_offsets %r: %r, expected offset %d" % (spec, vars(r), want)
    finally:
        c.close()

    if can(admin, "describe_cluster"):
        d = admin.describe_cluster().result(30)
        assert [n.id for n in d.nodes] == [node] and d.controller.id == node and d.cluster_id, \
            "describe_cluster: %r" % vars(d)

    # delete_topics: gone from list_topics.
    assert admin.delete_topics([b], operation_timeout=30)[b].result(30) is None
    itlib.wait_until("%s gone from list_topics" % b, lambda: partitions(admin, b) is None)
    expect_error("delete_topics of a missing topic", KafkaError.UNKNOWN_TOPIC_OR_PART,
                 lambda: admin.delete_topics([b], operation_timeout=30)[b].result(30))


def check_fetch_max_bytes():
    """Issue 18 item 2: a consumer asking for at most 1,000,000 bytes per
    response and 20,000,000 per partition, over 21 records of 900 KB. A
    response must stay within fetch.max.bytes (only a first batch may exceed
    it), or it exceeds receive.message.max.bytes and librdkafka reconnects
    and retries forever."""
    topic = itlib.topic_name(SUITE, "fetch-max-bytes")
    create_topic(topic)
    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 0})
    errors = []
    for i in range(21):
        p.produce(topic, value=bytes([i]) * 900_000, partition=0,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
        p.poll(0)
    assert p.flush(60) == 0 and not errors, "produce failed: %r" % errors[:3]
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "fjord-it-" + SUITE, "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.max.bytes": 1_000_000,
                  "max.partition.fetch.bytes": 20_000_000, "receive.message.max.bytes": 1_100_000})
    try:
        got = read(c, topic, 0, 0)
    finally:
        c.close()
    assert [m.value for m in got] == [bytes([i]) * 900_000 for i in range(21)], \
        "read %d records of 21" % len(got)


if __name__ == "__main__":
    version = confluent_kafka.version()
    version = version[0] if isinstance(version, tuple) else version
    print("%s: confluent-kafka %s, librdkafka %s" % (SUITE, version, confluent_kafka.libversion()[0]))
    sys.exit(itlib.run_tests(SUITE, [(codec, lambda codec=codec: check_codec(codec)) for codec in itlib.CODECS]
                             + [("admin", check_admin), ("fetch-max-bytes", check_fetch_max_bytes)]))
