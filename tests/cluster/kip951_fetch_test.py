#!/usr/bin/env python3
"""KIP-951 in Fetch on a 3-node cluster of real processes: Fetch v16+ answers
NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH with the partition's current
leader and that leader's endpoint, as Kafka 4.4 does (KafkaApis: the local
replica's view of the leader, else the metadata's; node_endpoints on the
request's listener). The requests are written and the responses read with
Kafka's own message classes (tests/kafka_ref/Probe.java), so the bytes are
checked by Kafka's decoder too.
  1. Fetch v16 and v17 to a follower: NOT_LEADER_OR_FOLLOWER, current_leader
     = (leader, leader epoch), node_endpoints = the leader's host and port.
  2. Fetch v16 to the leader with a stale current_leader_epoch:
     FENCED_LEADER_EPOCH naming the leader itself.
  3. Fetch v15 to a follower: NOT_LEADER_OR_FOLLOWER without them.
  4. Metadata lists no offline replica while every node is up.
usage: kip951_fetch_test.py [--binary PATH] [--keep]
"""
import json
import os
import subprocess

from confluent_kafka.admin import AdminClient, NewTopic

from faults_test import Cluster
from harness import Failure, ROOT, check, log, replicated_ready, run_test, wait_for

TOPIC = "kip951"
KAFKA_REF = os.path.join(ROOT, "tests", "kafka_ref", "kafka-ref")
PROBE = os.path.join(ROOT, "tests", "kafka_ref", "Probe.java")


def probe(bootstrap, requests):
    """Sends (api_key, version, body) requests, one connection each; returns the
    responses as dicts (Kafka's JSON form)."""
    lines = "".join(f"{k} {v} {json.dumps(body)}\n" for k, v, body in requests)
    out = subprocess.run([KAFKA_REF, "run-class", PROBE, bootstrap], input=lines, capture_output=True, text=True,
                         timeout=180)
    if out.returncode != 0:
        raise Failure(f"Probe failed: {out.stderr[-2000:]}")
    return [json.loads(x) for x in out.stdout.splitlines() if x.strip()]


def metadata_req(topic):
    return (3, 12, {"topics": [{"name": topic, "topicId": "AAAAAAAAAAAAAAAAAAAAAA"}],
                    "allowAutoTopicCreation": False, "includeTopicAuthorizedOperations": False})


def fetch_req(version, topic_id, epoch=-1):
    return (1, version, {"maxWaitMs": 0, "minBytes": 1, "maxBytes": 1 << 20, "isolationLevel": 0, "sessionId": 0,
                         "sessionEpoch": -1, "forgottenTopicsData": [], "rackId": "",
                         "topics": [{"topicId": topic_id, "partitions": [
                             {"partition": 0, "currentLeaderEpoch": epoch, "fetchOffset": 0, "lastFetchedEpoch": -1,
                              "logStartOffset": -1, "partitionMaxBytes": 1 << 20}]}]})


def run(args, work):
    cl = Cluster(args.binary, work)
    try:
        for x in cl.nodes:
            x.start()
        wait_for("every node to list every broker",
                 lambda: all(len(AdminClient({"bootstrap.servers": x.bootstrap}).list_topics(timeout=5).brokers) == 3
                             for x in cl.nodes), timeout=60)
        admin = AdminClient({"bootstrap.servers": cl.bootstrap})
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=3)])[TOPIC].result(30)
        wait_for("the partition led, all replicas in sync", lambda: replicated_ready(cl.nodes, TOPIC, [1, 2, 3]),
                 timeout=60)

        md = probe(cl.nodes[0].bootstrap, [metadata_req(TOPIC)])[0]
        topic = md["topics"][0]
        part = topic["partitions"][0]
        leader_id, epoch, topic_id = part["leaderId"], part["leaderEpoch"], topic["topicId"]
        check(leader_id in (1, 2, 3) and epoch >= 1, f"metadata: leader {leader_id}, epoch {epoch}")
        check(part["offlineReplicas"] == [], f"offline replicas {part['offlineReplicas']} while every node is up")
        leader = cl.node(leader_id)
        follower = next(x for x in cl.nodes if x is not leader)
        log(f"leader {leader_id} (epoch {epoch}), asking follower {follower.id}")

        want_endpoint = {"nodeId": leader_id, "host": "127.0.0.1", "port": leader.port, "rack": None}
        for v, resp in zip((16, 17, 15), probe(follower.bootstrap,
                                               [fetch_req(16, topic_id), fetch_req(17, topic_id),
                                                fetch_req(15, topic_id)])):
            p = resp["responses"][0]["partitions"][0]
            check(p["errorCode"] == 6, f"Fetch v{v} to a follower: error {p['errorCode']}, not NOT_LEADER_OR_FOLLOWER")
            if v >= 16:
                check(p.get("currentLeader") == {"leaderId": leader_id, "leaderEpoch": epoch},
                      f"Fetch v{v}: current leader {p.get('currentLeader')}, want ({leader_id}, {epoch})")
                check(resp.get("nodeEndpoints") == [want_endpoint],
                      f"Fetch v{v}: node endpoints {resp.get('nodeEndpoints')}, want {[want_endpoint]}")
            else:
                check("currentLeader" not in p and not resp.get("nodeEndpoints"),
                      f"Fetch v{v} carries KIP-951 fields: {resp}")
        log("follower: Fetch v16/v17 name the leader and its endpoint; v15 does not")

        resp = probe(leader.bootstrap, [fetch_req(16, topic_id, epoch - 1)])[0]
        p = resp["responses"][0]["partitions"][0]
        check(p["errorCode"] == 74, f"Fetch v16 with a stale epoch: error {p['errorCode']}, not FENCED_LEADER_EPOCH")
        check(p.get("currentLeader") == {"leaderId": leader_id, "leaderEpoch": epoch},
              f"FENCED_LEADER_EPOCH: current leader {p.get('currentLeader')}")
        check(resp.get("nodeEndpoints") == [want_endpoint], f"FENCED_LEADER_EPOCH: endpoints {resp.get('nodeEndpoints')}")
        log("leader: a stale epoch is fenced, naming the leader itself")
        log("kip951_fetch_test: all checks passed")
    finally:
        cl.stop()


def main():
    run_test("kip951_fetch_test", run)


if __name__ == "__main__":
    main()
