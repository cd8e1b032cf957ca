#!/usr/bin/env python3
"""A replicated partition's log start moves through Raft: DeleteRecords and
retention on a 3-node cluster of real processes, and a follower that was
down while the leader's log start passed its log end catches up from a
snapshot.
  1. DeleteRecords (AdminClient.delete_records, routed to the leader) moves
     the low watermark inside the log; ListOffsets earliest and a consumer
     reading from the beginning start there; every node stays up.
  2. A follower is killed; 4 MB more are written in 1 MiB segments and
     retention.bytes makes the leader's log start pass the follower's log
     end; the follower restarts and is in sync again.
  3. The leader is killed: the new leader (one of the others) serves every
     acknowledged record from its log start on, once, in order.
usage: log_start_test.py [--binary PATH] [--keep]
"""
import os
import time

from confluent_kafka import Consumer, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from harness import Cluster, check, cluster_view, log, replicated_ready, run_test, wait_for

TOPIC = "trimmed"
VALUE = 10 * 1024


def write(bootstrap, first, count):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "message.timeout.ms": 30000, "log_level": 2})
    acked, errors = {}, []

    def cb(err, msg):
        if err:
            errors.append(str(err))
        else:
            acked[msg.offset()] = msg.key().decode()

    for i in range(first, first + count):
        p.produce(TOPIC, key=str(i).encode(), value=bytes(VALUE), partition=0, on_delivery=cb)
        p.poll(0)
    check(p.flush(60) == 0 and not errors, f"writes failed: {errors[:3]}")
    return acked


def earliest(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=5)
        return low, high
    finally:
        c.close()


def read_from_start(bootstrap, last):
    """Records from the log start through offset `last`."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "fetch.max.bytes": 4 << 20})
    c.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not got or got[-1][0] < last):
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.offset(), m.key().decode()))
    c.close()
    return got


def run(args, work):
    cl = Cluster(args.binary, work, {"log.retention.check.interval.ms": "300"})
    try:
        for x in cl.nodes:
            x.start()
        wait_for("every node to list every broker",
                 lambda: all(cluster_view(x)["brokers"] == [1, 2, 3] for x in cl.nodes), timeout=60)
        admin = AdminClient({"bootstrap.servers": cl.bootstrap})
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=3,
                                      config={"segment.bytes": "1048576", "min.insync.replicas": "2"})])[TOPIC].result(30)
        wait_for("the partition led, all replicas in sync", lambda: replicated_ready(cl.nodes, TOPIC, [1, 2, 3]),
                 timeout=60)
        acked = write(cl.bootstrap, 0, 100)

        # 1. DeleteRecords inside the log.
        res = admin.delete_records([TopicPartition(TOPIC, 0, 50)])
        low = list(res.values())[0].result(30).low_watermark
        check(low == 50, f"DeleteRecords answered low watermark {low}, not 50")
        check(earliest(cl.bootstrap)[0] == 50, f"earliest offset {earliest(cl.bootstrap)} after DeleteRecords to 50")
        first = read_from_start(cl.bootstrap, max(acked))
        check(first and first[0][0] == 50, f"a consumer from the beginning starts at {first[:1]}, not 50")
        check(all(x.alive() for x in cl.nodes), "a node died on DeleteRecords")
        log("delete: DeleteRecords moved the low watermark to 50; every node up")

        # 2. A follower is down while retention passes its log end.
        leader = cl.node(cl.leaders(TOPIC)[0])
        follower = next(x for x in cl.nodes if x is not leader)
        follower.kill()
        acked.update(write(cl.bootstrap, 100, 400))
        # A new client: the first may still wait on the stopped node.
        admin = AdminClient({"bootstrap.servers": leader.bootstrap})
        ok = admin.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, TOPIC, incremental_configs=[
            ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET)])])
        list(ok.values())[0].result(30)
        low = wait_for("retention to pass the stopped follower's log end",
                       lambda: (lambda lo: lo if lo > 100 else None)(earliest(leader.bootstrap)[0]), timeout=60)
        log(f"retention: the leader's log start moved to {low} (the stopped follower's log ends at 100)")
        follower.start()

        def installed():
            # The ISR may still list it (its lag window has not run out): its
            # log on disk says whether it took the snapshot and caught up.
            d = os.path.join(follower.dir, f"{TOPIC}-0")
            bases = sorted(int(f[:-4]) for f in os.listdir(d) if f.endswith(".log"))
            size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".log"))
            return bases and bases[0] > 100 and size >= (max(acked) - low) * VALUE

        wait_for("the restarted follower to install the snapshot and catch up", installed, timeout=90)
        wait_for("the restarted follower in sync", lambda: replicated_ready(cl.nodes, TOPIC, [1, 2, 3]), timeout=90)
        check(all(x.alive() for x in cl.nodes), "a node died while the follower caught up")
        log(f"snapshot: node {follower.id} restarted behind the leader's log start and caught up")

        # 3. The leader goes: the others serve everything from their log start.
        leader.kill()
        wait_for("a new leader", lambda: (lambda l: l if l[0] not in (-1, leader.id) else None)(
            cl.leaders(TOPIC)), timeout=30)
        low, high = wait_for("the new leader's offsets", lambda: earliest(follower.bootstrap), timeout=30)
        # Each new leader adds its LEADER_CHANGE control batch.
        check(high > max(acked), f"the log ends at {high}, before the last acknowledged offset {max(acked)}")
        got = read_from_start(follower.bootstrap, max(acked))
        want = [(o, acked[o]) for o in sorted(acked) if o >= got[0][0]] if got else []
        check(got and got[0][0] >= 50 and got == want,
              f"after the failover: read {len(got)} records from {got[:1]}, expected {len(want)} from the same start")
        log(f"failover: the new leader serves offsets {got[0][0]}..{got[-1][0]}, each acknowledged record once")
        log("log_start_test: all checks passed")
    finally:
        cl.stop()


def main():
    run_test("log_start_test", run)


if __name__ == "__main__":
    main()
