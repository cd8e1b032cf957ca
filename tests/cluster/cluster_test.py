#!/usr/bin/env python3
"""A Fjord cluster of real processes on loopback, driven by real clients.

Starts N nodes (default 3), each a voter of the metadata quorum and a
broker, and checks with confluent-kafka (librdkafka) and kcat:

  formation   every node lists every broker and the same controller and
              cluster id; a topic created through one node appears on all,
              its partitions spread over the brokers
  data        records produced through the whole cluster (acks=all,
              idempotent) are read back exactly once, in order, by a group
  replicated  a topic with replication factor N (every partition a Raft
              group): each partition is led by its preferred (first)
              replica with every replica in sync, acks=all records are read back exactly once;
              a replication factor above the broker count is refused
  failover    kill -9 of the active controller: a new one is elected, topic
              creation and produce keep working on the survivors, the dead
              broker is fenced (it leaves the brokers list and its partitions
              go leaderless); the replicated topic's partitions it led get
              new leaders in later epochs, keep taking writes, and lose no
              acknowledged record; it restarts, rejoins, catches up, takes
              its preferred leaderships back, and its records are back
  foreign     a node holding another cluster's data refuses to join with a
              message that says so (and never takes the quorum over)

usage: cluster_test.py [--binary PATH] [--nodes N] [--keep]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import (ROOT, Failure, Node, check, cluster_view, free_ports, log, produce, read_all,
                     replicated_ready, same_records, wait_for)


GROUPS = [f"g-commit-{i}" for i in range(12)]


def commit_offsets(bootstrap, topic, partitions, base):
    """Commits offsets base+i+p for every group i and partition p."""
    for i, g in enumerate(GROUPS):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": g, "enable.auto.commit": False})
        # As an application does: a retriable error (the coordinator moving to
        # the preferred leader of its new __consumer_offsets partition) is retried.
        for attempt in range(20):
            try:
                c.commit(offsets=[TopicPartition(topic, p, base + i + p) for p in range(partitions)],
                         asynchronous=False)
                break
            except KafkaException as e:
                moving = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                          KafkaError.COORDINATOR_NOT_AVAILABLE)
                if attempt == 19 or e.args[0].code() not in moving:
                    raise
                time.sleep(0.2)
        c.close()


def committed_offsets(bootstrap, topic, partitions):
    out = {}
    for g in GROUPS:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": g, "enable.auto.commit": False})
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        c.close()
        out[g] = [tp.offset for tp in got]
    return out


def coordinators(bootstrap):
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.describe_consumer_groups(GROUPS)
    return {g: f.result(20).coordinator.id for g, f in fs.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/src/app/fjord"))
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fjord-cluster-")
    n = args.nodes
    ports = free_ports(2 * n)
    voters = ",".join(f"{i + 1}@127.0.0.1:{ports[n + i]}" for i in range(n))
    extra = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500",
             "controller.quorum.election.timeout.ms": "500", "group.initial.rebalance.delay.ms": "0",
             "leader.imbalance.check.interval.seconds": "2"}
    nodes = [Node(args.binary, work, i + 1, ports[i], ports[n + i], voters, extra) for i in range(n)]
    bootstrap = ",".join(x.bootstrap for x in nodes)
    extras = []
    ok = False
    try:
        t0 = time.monotonic()
        for x in nodes:
            x.start()

        # ---- formation
        def formed():
            views = [cluster_view(x) for x in nodes]
            return views if all(v["brokers"] == list(range(1, n + 1)) for v in views) else None

        views = wait_for("every node to list every broker", formed, timeout=60)
        log(f"formation: {n} nodes serving in {time.monotonic() - t0:.1f} s; brokers {views[0]['brokers']}, "
            f"controller {views[0]['controller']}, cluster {views[0]['cluster_id']}")
        check(len({v["cluster_id"] for v in views}) == 1, f"cluster ids differ: {[v['cluster_id'] for v in views]}")
        for x in nodes:
            ids = [line for line in x.log_text().splitlines() if "metadata quorum: term" in line]
            check(ids, f"node {x.id} logged no quorum state")

        parts = 2 * n
        admin = AdminClient({"bootstrap.servers": nodes[-1].bootstrap})
        fs = admin.create_topics([NewTopic("orders", num_partitions=parts, replication_factor=1)])
        fs["orders"].result(30)
        leaders = wait_for("'orders' on every node", lambda: (lambda vs: vs[0]["topics"].get("orders")
                            if all(v["topics"].get("orders") == vs[0]["topics"].get("orders") and
                                   v["topics"].get("orders") for v in vs) else None)(
                            [cluster_view(x) for x in nodes]))
        check(len(set(leaders.values())) == min(n, parts), f"partitions not spread over the brokers: {leaders}")
        log(f"formation: topic created through node {nodes[-1].id}, leaders {leaders}")
        too_many = admin.create_topics([NewTopic("rf-too-many", num_partitions=1, replication_factor=n + 1)])
        try:
            too_many["rf-too-many"].result(30)
            raise Failure(f"replication factor {n + 1} was accepted by {n} brokers")
        except Failure:
            raise
        except Exception as e:
            check("INVALID_REPLICATION_FACTOR" in str(e), f"rf {n + 1}: {e}")

        # ---- manual assignment (kafka-topics --replica-assignment): the
        # replicas asked for, the first leading; Kafka's refusals.
        manual = {0: [2, 3], 1: [3, 1], 2: [1, 2]} if n >= 3 else {0: [1]}
        admin.create_topics([NewTopic("placed", num_partitions=len(manual), replica_assignment=[manual[p] for p in sorted(manual)])])[
            "placed"].result(30)
        view = wait_for("'placed' led by its first replicas", lambda: (lambda v: v if v["topics"].get("placed") == {
            p: r[0] for p, r in manual.items()} else None)(cluster_view(nodes[0])), timeout=60)
        check(view["replicas"]["placed"] == manual, f"replicas {view['replicas']['placed']}, asked for {manual}")
        for bad, why in [([[1, 9]], "includes broker 9, but no such broker is registered"),
                         ([[1, 1]], "includes the broker 1 more than once"),
                         ([[1], [1, 2]], "includes a partition with 2 replica(s), but this is not consistent")]:
            try:
                admin.create_topics([NewTopic("misplaced", num_partitions=len(bad), replica_assignment=bad)])["misplaced"].result(30)
                raise Failure(f"assignment {bad} was accepted")
            except Failure:
                raise
            except Exception as e:
                check("INVALID_REPLICA_ASSIGNMENT" in str(e) and why in str(e), f"assignment {bad}: {e}")
        log(f"assignment: 'placed' has the replicas asked for, {manual}; three bad assignments refused as Kafka does")

        # ---- replicated: every partition a Raft group over all the nodes
        t_rep = time.monotonic()
        admin.create_topics([NewTopic("replicated", num_partitions=3, replication_factor=n,
                                      config={"min.insync.replicas": "2"})])["replicated"].result(30)
        rep_leaders = wait_for("every replicated partition led, all replicas in sync",
                               lambda: replicated_ready(nodes, "replicated", list(range(1, n + 1))), timeout=60)
        log(f"replicated: 3 partitions x {n} replicas elected in {time.monotonic() - t_rep:.1f} s, "
            f"leaders {rep_leaders}")
        preferred = {p: r[0] for p, r in cluster_view(nodes[0])["replicas"]["replicated"].items()}
        wait_for(f"the preferred replicas {preferred} leading",
                 lambda: replicated_ready(nodes, "replicated", list(range(1, n + 1))) == preferred, timeout=30)
        check(len(set(preferred.values())) == 3, f"the preferred leaders are not spread: {preferred}")
        rep_acked = produce(bootstrap, "replicated", 600, "r")
        same_records(rep_acked, read_all(bootstrap, "replicated", 3, len(rep_acked), "g-rep"))
        log(f"replicated: {len(rep_acked)} records acknowledged by a majority and read back exactly once")
        # Committed offsets live in the replicated __consumer_offsets.
        commit_offsets(bootstrap, "replicated", 3, 100)
        committed = committed_offsets(bootstrap, "replicated", 3)
        check(all(v == [100 + i + p for p in range(3)] for i, v in enumerate(committed.values())),
              f"committed offsets read back wrong: {committed}")
        offsets_isr = cluster_view(nodes[0])["isr"].get("__consumer_offsets", {})
        check(offsets_isr and all(len(v) == n for v in offsets_isr.values()),
              f"__consumer_offsets should have {n} replicas in sync: {offsets_isr}")
        coord_before = coordinators(bootstrap)

        # ---- data
        acked = produce(bootstrap, "orders", 600, "a")
        seen = read_all(bootstrap, "orders", parts, len(acked), "g1")
        same_records(acked, seen)
        log(f"data: {len(acked)} records acknowledged and read back exactly once, in order")

        # ---- failover: kill the active controller
        ctl = views[0]["controller"]
        victim = next(x for x in nodes if x.id == ctl)
        survivors = [x for x in nodes if x is not victim]
        victim.kill()
        t_kill = time.monotonic()
        sb = ",".join(x.bootstrap for x in survivors)

        def new_controller():
            v = [cluster_view(x) for x in survivors]
            c = {w["controller"] for w in v}
            return v if len(c) == 1 and ctl not in c and victim.id not in v[0]["brokers"] else None

        after = wait_for("a new controller and the dead broker fenced", new_controller, timeout=60)
        log(f"failover: node {ctl} killed; controller {after[0]['controller']} after "
            f"{time.monotonic() - t_kill:.1f} s; brokers {after[0]['brokers']}")
        dead = [p for p, l in after[0]["topics"]["orders"].items() if l == -1]
        check(dead == sorted(p for p, l in leaders.items() if l == victim.id),
              f"the dead broker's partitions should be leaderless: {after[0]['topics']['orders']}")
        # The replicated partitions it led have new leaders, in later epochs.
        def rep_moved():
            v = cluster_view(survivors[0])["topics"]["replicated"]
            return v if all(l >= 0 and l != victim.id for l in v.values()) else None

        moved = wait_for("new leaders for the replicated partitions", rep_moved, timeout=60)
        log(f"failover: replicated leaders {rep_leaders} -> {moved} after {time.monotonic() - t_kill:.1f} s")
        rep_acked += produce(sb, "replicated", 300, "r2")
        same_records(rep_acked, read_all(sb, "replicated", 3, len(rep_acked), "g-rep2"))
        log(f"failover: {len(rep_acked)} replicated records, none lost, each once")
        # The groups it coordinated moved with their __consumer_offsets
        # partitions' leadership; their committed offsets survived.
        moved_groups = [g for g, c in coord_before.items() if c == victim.id]
        coord_after = wait_for("every group coordinated by a survivor",
                               lambda: (lambda c: c if all(x != victim.id for x in c.values()) else None)(
                                   coordinators(sb)), timeout=60)
        after_commit = committed_offsets(sb, "replicated", 3)
        check(after_commit == committed, f"committed offsets changed by the failover: {after_commit} != {committed}")
        log(f"failover: {len(moved_groups)} groups moved coordinator ({ {g: coord_after[g] for g in moved_groups} }); "
            f"their committed offsets survived")
        admin2 = AdminClient({"bootstrap.servers": sb})
        admin2.create_topics([NewTopic("after", num_partitions=2, replication_factor=1)])["after"].result(30)
        acked2 = produce(sb, "after", 100, "b")
        same_records(acked2, read_all(sb, "after", 2, len(acked2), "g2"))
        log("failover: a topic created and 100 records written and read on the survivors")

        # The dead node comes back: it rejoins and its partitions lead again.
        victim.start()
        wait_for("the restarted node back in every broker list",
                 lambda: all(cluster_view(x)["brokers"] == list(range(1, n + 1)) for x in nodes), timeout=60)
        wait_for("every partition of 'orders' led again",
                 lambda: all(l >= 0 for l in cluster_view(nodes[0])["topics"]["orders"].values()), timeout=60)
        seen = read_all(bootstrap, "orders", parts, len(acked), "g3")
        same_records(acked, seen)
        wait_for("the restarted node back in sync and leading its preferred partitions again",
                 lambda: replicated_ready(nodes, "replicated", list(range(1, n + 1))) == preferred, timeout=60)
        log("failover: the restarted node rejoined, caught up and took its preferred leaderships back; "
            "every record of 'orders' is back")

        # ---- shutdown: every node stops cleanly
        for x in nodes:
            rc = x.stop()
            check(rc == 0, f"node {x.id} exited with {rc} on SIGTERM")
        for x in nodes:
            bad = [line for line in x.log_text().splitlines() if "assertion failed" in line]
            check(not bad, f"node {x.id}: {bad[:3]}")

        # ---- foreign: a node with another cluster's data does not join
        lone_ports = free_ports(2)
        lone = Node(args.binary, os.path.join(work, "lone"), 1, lone_ports[0], lone_ports[1],
                    f"1@127.0.0.1:{lone_ports[1]}", {})
        extras.append(lone)
        lone.start()
        wait_for("a single-node cluster", lambda: cluster_view(lone)["brokers"] == [1])
        check(lone.stop() == 0, "the single node did not stop cleanly")
        intruder = Node(args.binary, work, 1, ports[0], ports[n], voters, extra)
        extras.append(intruder)
        shutil.rmtree(nodes[0].dir)
        shutil.copytree(lone.dir, nodes[0].dir)
        for x in nodes[1:]:
            x.start()
        intruder.start()

        def refused():
            t = intruder.log_text()
            return "refusing" in t and "this is cluster" in t

        wait_for("the foreign node's refusal in its log", refused, timeout=30)
        v = wait_for("the cluster without the foreign node",
                     lambda: (lambda w: w if w["brokers"] == list(range(2, n + 1)) else None)(cluster_view(nodes[1])))
        check(v["cluster_id"] == views[0]["cluster_id"], "the cluster id changed")
        log(f"foreign: a node holding another cluster's data was refused; the cluster kept id {v['cluster_id']}")
        intruder.stop()
        for x in nodes[1:]:
            x.stop()
        ok = True
        log("cluster_test: all checks passed")
    except Failure as e:
        log(f"cluster_test: FAILED: {e}")
    finally:
        for x in nodes + extras:
            if x.alive():
                x.proc.kill()
        if not ok:
            for x in nodes:
                if os.path.exists(x.log_path):
                    log(f"---- node {x.id} log (tail)")
                    log("\n".join(x.log_text().splitlines()[-30:]))
        if args.keep or not ok:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
