#!/usr/bin/env python3
"""Admin benchmarks against a running broker (confluent-kafka AdminClient,
from the integration venv): CreateTopics of N topics (one request, and in
requests of 100), DescribeConfigs latency (topic and broker, sequential
requests, p50/p99). Prints one JSON line per figure.

  bench/admin_bench.py BOOTSTRAP [--topics 1000] [--describes 300]
Run by bench/admin_bench.sh, which starts the broker and adds the
idempotence on/off produce ratio (fjord_loadgen)."""
import argparse, json, statistics, time
from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource

ap = argparse.ArgumentParser()
ap.add_argument("bootstrap")
ap.add_argument("--topics", type=int, default=1000)
ap.add_argument("--describes", type=int, default=300)
a = ap.parse_args()
admin = AdminClient({"bootstrap.servers": a.bootstrap})
admin.list_topics(timeout=10)
run = int(time.time())

def create(names, per_request):
    t0 = time.perf_counter()
    for i in range(0, len(names), per_request):
        fs = admin.create_topics([NewTopic(n, 1, 1) for n in names[i:i + per_request]], request_timeout=120)
        for f in fs.values():
            f.result()
    return time.perf_counter() - t0

for per_request in (a.topics, 100):
    names = ["bench.ct.%d.%d.%d" % (run, per_request, i) for i in range(a.topics)]
    s = create(names, per_request)
    print(json.dumps({"bench": "create_topics", "topics": a.topics, "topics_per_request": per_request,
                      "seconds": round(s, 3), "topics_per_s": round(a.topics / s, 1)}))

def describe(res):
    lat = []
    for _ in range(a.describes):
        t0 = time.perf_counter()
        for f in admin.describe_configs([res]).values():
            f.result()
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return {"p50_ms": round(statistics.median(lat), 3), "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 3),
            "requests": len(lat)}

for kind, res in (("topic", ConfigResource("topic", "bench.ct.%d.%d.0" % (run, a.topics))),
                  ("broker", ConfigResource("broker", "1"))):
    print(json.dumps(dict({"bench": "describe_configs", "resource": kind}, **describe(res))))
