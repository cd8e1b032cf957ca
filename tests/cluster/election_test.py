#!/usr/bin/env python3
"""ElectLeaders on a 3-node cluster of real processes, through Kafka's own
kafka-leader-election tool (LeaderElectionCommand from the Kafka 4.4 jars) and
the confluent-kafka AdminClient. The cluster runs with
auto.leader.rebalance.enable=false, so only an election moves leaders back.
  1. A node that leads partitions is killed and restarted: its partitions are
     led by the others; PREFERRED for all partitions moves every one back to
     its preferred replica (the tool reports success; Metadata agrees).
  2. PREFERRED again: nothing to do (the tool says so; the AdminClient gets
     ELECTION_NOT_NEEDED for a named partition). UNCLEAN on a led partition:
     ELECTION_NOT_NEEDED.
  3. The preferred replica of a partition is down: PREFERRED for it answers
     PREFERRED_LEADER_NOT_AVAILABLE and the leader stays.
usage: election_test.py [--binary PATH] [--keep]
"""
import os
import subprocess

from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import Cluster, ROOT, check, cluster_view, log, replicated_ready, run_test, wait_for

TOPIC = "elect"
KREF = os.path.join(ROOT, "tests/kafka_ref/kafka-ref")


def tool(bootstrap, *args):
    """kafka-leader-election; its output."""
    p = subprocess.run([KREF, "run-class", "org.apache.kafka.tools.LeaderElectionCommand",
                        "--bootstrap-server", bootstrap, *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def elect(bootstrap, kind, partitions):
    """AdminClient.elect_leaders: {partition: error code name or None}."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = a.elect_leaders(kind, [TopicPartition(TOPIC, p) for p in partitions]).result(30)
    return {tp.partition: (err.name() if err else None) for tp, err in res.items()}


def preferred_of(cl):
    return {p: r[0] for p, r in cluster_view(cl.live()[0])["replicas"][TOPIC].items()}


def run(args, work):
    subprocess.run([KREF, "fetch"], check=True, timeout=900)
    cl = Cluster(args.binary, work, {"auto.leader.rebalance.enable": "false"})
    try:
        for x in cl.nodes:
            x.start()
        wait_for("every node to list every broker",
                 lambda: all(cluster_view(x)["brokers"] == [1, 2, 3] for x in cl.nodes), timeout=60)
        admin = AdminClient({"bootstrap.servers": cl.bootstrap})
        admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=3)])[TOPIC].result(30)
        wait_for("every partition led, all in sync", lambda: replicated_ready(cl.nodes, TOPIC, [1, 2, 3]),
                 timeout=60)
        preferred = preferred_of(cl)

        # 1. A leader goes and comes back: its partitions stay elsewhere.
        victim = cl.node(preferred[0])
        victim.kill()
        wait_for("new leaders", lambda: (lambda l: l if victim.id not in l.values() and -1 not in l.values()
                                         else None)(cl.leaders(TOPIC)), timeout=30)
        victim.start()
        leaders = wait_for("all in sync again", lambda: replicated_ready(cl.nodes, TOPIC, [1, 2, 3]), timeout=60)
        check(leaders != preferred, f"leaders {leaders} are already the preferred ones: nothing to elect")
        rc, out = tool(cl.bootstrap, "--election-type", "PREFERRED", "--all-topic-partitions")
        check(rc == 0 and "Successfully completed leader election (PREFERRED)" in out, f"the tool said ({rc}): {out}")
        moved = wait_for("the preferred replicas leading",
                         lambda: (lambda l: l if l == preferred else None)(cl.leaders(TOPIC)), timeout=10)
        log(f"preferred: leaders {leaders} -> {moved} after kafka-leader-election --all-topic-partitions")

        # 2. Nothing left to elect.
        rc, out = tool(cl.bootstrap, "--election-type", "PREFERRED", "--topic", TOPIC, "--partition", "1")
        check(rc == 0 and "Valid replica already elected for partitions" in out, f"the tool said ({rc}): {out}")
        got = elect(cl.bootstrap, ElectionType.PREFERRED, [0, 1, 2])
        check(got == {0: "ELECTION_NOT_NEEDED", 1: "ELECTION_NOT_NEEDED", 2: "ELECTION_NOT_NEEDED"}, f"got {got}")
        got = elect(cl.bootstrap, ElectionType.UNCLEAN, [0])
        check(got == {0: "ELECTION_NOT_NEEDED"}, f"unclean on a led partition: {got}")
        log("again: ELECTION_NOT_NEEDED from the tool, and for PREFERRED and UNCLEAN from the AdminClient")

        # 3. The preferred replica is down.
        down = cl.node(preferred[2])
        down.kill()
        led = wait_for("partition 2 led elsewhere", lambda: (lambda l: l if l[2] not in (-1, down.id) else None)(
            cl.leaders(TOPIC)), timeout=30)
        got = elect(",".join(x.bootstrap for x in cl.live()), ElectionType.PREFERRED, [2])
        check(got == {2: "PREFERRED_LEADER_NOT_AVAILABLE"}, f"with the preferred replica down: {got}")
        check(cl.leaders(TOPIC)[2] == led[2], "the leader moved although the preferred replica is down")
        log(f"unavailable: PREFERRED_LEADER_NOT_AVAILABLE while node {down.id} is down; node {led[2]} still leads")
        log("election_test: all checks passed")
    finally:
        cl.stop()


def main():
    run_test("election_test", run)


if __name__ == "__main__":
    main()
