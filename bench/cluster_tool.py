#!/usr/bin/env python3
"""Cluster helpers for bench/compare_cluster.sh, on confluent-kafka (librdkafka).

The same client and settings drive Fjord and Apache Kafka alike; nothing here
knows which broker it talks to. Every command prints one JSON line on stdout
(progress goes to stderr) and exits non-zero if it could not do its job.

  brokers   wait until Metadata through every bootstrap address lists COUNT brokers
  create    create a topic (partitions, replication factor, min.insync.replicas) and
            wait until every partition has a leader and every replica in sync
  wait-isr  wait until every partition of a topic has a leader and a full ISR
  failover  kill -9 the leader of one partition while a producer writes to that
            partition with acks=all at a fixed rate; report when the acks stopped
            and when the next one arrived, then read the partition back and check
            that every acknowledged record is there

usage: cluster_tool.py COMMAND --bootstrap HOST:PORT,... [options]   (see --help)
"""
import argparse
import json
import os
import signal
import statistics
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def log(*a):
    print("cluster_tool:", *a, file=sys.stderr, flush=True)


def admin(bootstrap):
    # log_level 2: no "connection refused" lines while nodes start or after a kill.
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, "log_level": 2})


def wait_for(what, fn, timeout_s, interval_s=0.2):
    """Calls fn until it returns something true; exits 1 after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except KafkaException as e:  # a node not up yet, a request timed out
            last = e
        time.sleep(interval_s)
    log(f"timed out after {timeout_s} s waiting for {what}" + (f" (last error: {last})" if last else ""))
    sys.exit(1)


def partition_view(a, topic):
    """{partition: (leader, sorted replicas, sorted isr)} or None if the topic is unknown."""
    md = a.list_topics(topic=topic, timeout=5)
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        return None
    return {p: (m.leader, sorted(m.replicas), sorted(m.isrs)) for p, m in t.partitions.items()}


def full_isr(a, topic, partitions, rf):
    """The leaders if every partition has a leader and rf replicas, all in sync; else None."""
    v = partition_view(a, topic)
    if v is None or len(v) != partitions:
        return None
    for leader, replicas, isr in v.values():
        if leader < 0 or len(replicas) != rf or isr != replicas:
            return None
    return {p: leader for p, (leader, _, _) in v.items()}


def cmd_brokers(o):
    t0 = time.monotonic()
    addrs = o.bootstrap.split(",")

    def all_see_all():
        for addr in addrs:
            md = admin(addr).list_topics(timeout=3)
            if len(md.brokers) != o.count:
                return None
        return True

    wait_for(f"{o.count} brokers on every node", all_see_all, o.timeout_s, 0.5)
    print(json.dumps({"brokers": o.count, "ready_ms": (time.monotonic() - t0) * 1e3}))


def cmd_create(o):
    a = admin(o.bootstrap)
    t0 = time.monotonic()
    cfg = {"min.insync.replicas": str(o.min_isr)}
    fs = a.create_topics([NewTopic(o.topic, num_partitions=o.partitions, replication_factor=o.rf, config=cfg)],
                         request_timeout=o.timeout_s)
    fs[o.topic].result(o.timeout_s)
    created_ms = (time.monotonic() - t0) * 1e3
    leaders = wait_for(f"{o.topic}: leaders and full ISR", lambda: full_isr(a, o.topic, o.partitions, o.rf),
                       o.timeout_s)
    # The topic's effective min.insync.replicas, as the broker reports it.
    res = a.describe_configs([ConfigResource("topic", o.topic)])
    effective = {k: v.value for r in res.values() for k, v in r.result(o.timeout_s).items()}
    print(json.dumps({"topic": o.topic, "partitions": o.partitions, "rf": o.rf, "create_ms": created_ms,
                      "ready_ms": (time.monotonic() - t0) * 1e3,
                      "min_insync_replicas": effective.get("min.insync.replicas"),
                      "leaders": {str(p): l for p, l in sorted(leaders.items())}}))


def cmd_wait_isr(o):
    a = admin(o.bootstrap)
    t0 = time.monotonic()
    leaders = wait_for(f"{o.topic}: leaders and full ISR", lambda: full_isr(a, o.topic, o.partitions, o.rf),
                       o.timeout_s)
    print(json.dumps({"topic": o.topic, "ready_ms": (time.monotonic() - t0) * 1e3,
                      "leaders": {str(p): l for p, l in sorted(leaders.items())}}))


def process_gone(pid):
    """True once PID has exited (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def cmd_failover(o):
    pids = {int(k): int(v) for k, v in (x.split(":") for x in o.pids.split(","))}
    a = admin(o.bootstrap)
    view = wait_for(f"{o.topic}: leaders and full ISR", lambda: full_isr(a, o.topic, o.partitions, o.rf), 60)
    # A partition led by a node that is not the active metadata controller:
    # the failure measured is a broker's, not the controller's as well.
    candidates = [p for p, l in sorted(view.items()) if l != o.controller and l in pids]
    controller_killed = not candidates
    if controller_killed:
        candidates = [p for p, l in sorted(view.items()) if l in pids]
    part = candidates[0]
    victim = view[part]
    log(f"run {o.run}: partition {part}, leader {victim} (pid {pids[victim]}), controller {o.controller}")

    p = Producer({"bootstrap.servers": o.bootstrap, "acks": "all", "linger.ms": 0, "enable.idempotence": False,
                  "compression.type": "none", "message.timeout.ms": int(o.timeout_s * 1000),
                  "client.id": "cluster_tool_failover", "log_level": 2})
    acks = []      # (arrival monotonic s, seq, offset)
    errors = {}
    sent_at = {}   # seq -> produce() time

    def on_delivery(err, msg):
        t = time.monotonic()
        seq = int(msg.key())
        if err is not None:
            errors[err.name()] = errors.get(err.name(), 0) + 1
        else:
            acks.append((t, seq, msg.offset()))

    pad = b"x" * max(0, o.record_size - 24)
    period = 1.0 / o.rate
    seq = 0
    t_start = time.monotonic()
    t_next = t_start
    t_kill = t_dead = None
    resumed_at = None   # arrival time of the first ack of a record produced after the leader was gone
    deadline = t_start + o.steady_s + o.timeout_s
    while True:
        now = time.monotonic()
        if now >= t_next:
            key = str(seq).encode()
            p.produce(o.topic, key=key, value=f"{o.run}:{seq}:".encode().ljust(24, b"-") + pad,
                      partition=part, on_delivery=on_delivery)
            sent_at[seq] = now
            seq += 1
            t_next += period
            if t_next < now:           # fell behind (the queue was full or we were descheduled):
                t_next = now + period  # do not burst to catch up
        if t_kill is None and now - t_start >= o.steady_s:
            os.kill(pids[victim], signal.SIGKILL)
            t_kill = time.monotonic()
            log(f"run {o.run}: SIGKILL node {victim}")
        if t_kill is not None and t_dead is None and process_gone(pids[victim]):
            t_dead = time.monotonic()
        if t_dead is not None and resumed_at is None:
            for t, s, _ in reversed(acks):
                if sent_at[s] > t_dead:
                    resumed_at = t
                    break
        if resumed_at is not None and now - resumed_at >= o.after_s:
            break
        if now > deadline:
            log(f"run {o.run}: no acknowledgement within {o.timeout_s} s of the kill")
            break
        try:
            p.poll(max(0.0, min(t_next - time.monotonic(), 0.001)))
        except BufferError:
            p.poll(0.01)
    left = p.flush(o.timeout_s)

    # When the acks stopped and when the next one arrived: the largest gap
    # between consecutive acks (by arrival) from 1 s before the kill on.
    arrivals = sorted(t for t, _, _ in acks if t >= t_kill - 1.0)
    gap = (0.0, None, None)
    for x, y in zip(arrivals, arrivals[1:]):
        if y - x > gap[0]:
            gap = (y - x, x, y)
    normal_gaps = [y - x for x, y in zip(arrivals, arrivals[1:]) if y <= t_kill]
    acked = {s for _, s, _ in acks}

    # Read the partition back from the survivors: every acknowledged record of
    # this run must be there (acks=all with min.insync.replicas=2 promises it).
    c = Consumer({"bootstrap.servers": o.bootstrap, "group.id": "cluster-tool-verify", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "enable.partition.eof": True, "log_level": 2})
    low, high = c.get_watermark_offsets(TopicPartition(o.topic, part), timeout=30)
    c.assign([TopicPartition(o.topic, part, OFFSET_BEGINNING)])
    seen = set()
    read = 0
    prefix = f"{o.run}:".encode()
    read_deadline = time.monotonic() + 60
    while time.monotonic() < read_deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:  # reached the end
                if m.offset() >= high:
                    break
            continue
        read += 1
        if m.value().startswith(prefix):
            seen.add(int(m.key()))
        if m.offset() + 1 >= high:
            break
    c.close()
    missing = sorted(acked - seen)
    ms = lambda t: None if t is None or t_kill is None else round((t - t_kill) * 1e3, 3)
    out = {"run": o.run, "partition": part, "killed_node": victim, "controller": o.controller,
           "controller_killed": controller_killed, "rate": o.rate, "record_bytes": o.record_size,
           "sent": seq, "acked": len(acked), "errors": sum(errors.values()) + left,
           "error_names": " ".join(f"{k}={v}" for k, v in errors.items()), "unflushed": left,
           "process_gone_ms": ms(t_dead),
           "acks_stopped_ms": ms(gap[1]),          # last ack before the gap (negative: before the kill)
           "failover_ms": ms(gap[2]),              # first ack after the gap: kill -> next acknowledged write
           "gap_ms": round(gap[0] * 1e3, 3),
           "first_post_kill_record_ack_ms": ms(resumed_at),
           "normal_gap_max_ms": round(max(normal_gaps) * 1e3, 3) if normal_gaps else None,
           "normal_gap_median_ms": round(statistics.median(normal_gaps) * 1e3, 3) if normal_gaps else None,
           "read_back": read, "low_watermark": low, "high_watermark": high,
           "missing_acked": len(missing), "missing_first": missing[:10]}
    print(json.dumps(out))
    log(f"run {o.run}: acks stopped at {out['acks_stopped_ms']} ms, next ack at {out['failover_ms']} ms "
        f"after the kill; {len(acked)} acked, {len(missing)} of them missing on read-back")
    return 0 if not missing and out["failover_ms"] is not None else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["brokers", "create", "wait-isr", "failover"])
    ap.add_argument("--bootstrap", required=True, help="comma-separated HOST:PORT of every node")
    ap.add_argument("--count", type=int, default=3, help="brokers: how many brokers every node must list")
    ap.add_argument("--topic")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--rf", type=int, default=3, help="replication factor")
    ap.add_argument("--min-isr", type=int, default=2, help="create: the topic's min.insync.replicas")
    ap.add_argument("--timeout-s", type=float, default=120)
    ap.add_argument("--pids", help="failover: NODE:PID,... of the broker processes")
    ap.add_argument("--controller", type=int, default=-1, help="failover: the active controller's node id")
    ap.add_argument("--rate", type=float, default=500, help="failover: records/s")
    ap.add_argument("--record-size", type=int, default=1024, help="failover: record value bytes")
    ap.add_argument("--steady-s", type=float, default=2, help="failover: producing before the kill")
    ap.add_argument("--after-s", type=float, default=2, help="failover: producing after the acks resumed")
    ap.add_argument("--run", type=int, default=1, help="failover: run number (tags the records)")
    o = ap.parse_args()
    return {"brokers": cmd_brokers, "create": cmd_create, "wait-isr": cmd_wait_isr,
            "failover": cmd_failover}[o.command](o) or 0


if __name__ == "__main__":
    sys.exit(main())
