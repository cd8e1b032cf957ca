#!/usr/bin/env python3
"""Delay and loss for the packets an iptables NFQUEUE rule hands over: a
userspace stand-in for `tc qdisc ... netem`, for kernels built without
sch_netem (no module can be loaded there, and no Debian package brings it).

It binds one queue over raw netlink (no library), and for every packet
either drops it (probability --loss) or accepts it after --delay ms plus a
uniform jitter in [-jitter, +jitter] ms; verdicts are given out of order, so
jitter reorders packets as netem's does. Only the packet's metadata is
copied to userspace. The rule should use --queue-bypass: while this
process is not bound, packets pass unimpaired.

Run it inside the network namespace that holds the rule:
  ip netns exec HUB netem_queue.py --queue 7 --delay 20 --jitter 10 --loss 2
It prints "ready" once bound, and on SIGTERM the counts of packets delayed
and dropped.

usage: netem_queue.py [--queue N] [--delay MS] [--jitter MS] [--loss PERCENT]
"""

import argparse
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


class Queue:
    def __init__(self, num):
        self.num = num
        self.seq = 0
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.s.bind((0, 0))
        self._config(attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
        self._config(attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)) +
                     attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536)) +
                     attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)) +
                     attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)))

    def _send(self, msg_type, body, flags=NLM_F_REQUEST):
        self.seq += 1
        payload = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.num) + body
        self.s.send(struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags,
                                self.seq, 0) + payload)

    def _config(self, body):
        self._send(NFQNL_MSG_CONFIG, body, NLM_F_REQUEST | NLM_F_ACK)
        data = self.s.recv(65536)
        n, t = struct.unpack_from("=IH", data)
        if t == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, 16)
            if err:
                raise OSError(-err, f"nfqueue config of queue {self.num} refused")

    def verdict(self, packet_id, v):
        self._send(NFQNL_MSG_VERDICT, attr(NFQA_VERDICT_HDR, struct.pack("!II", v, packet_id)))

    def packets(self):
        """The ids of the packets waiting in one read of the socket."""
        data = self.s.recv(1 << 20)
        out = []
        pos = 0
        while pos + 16 <= len(data):
            n, t = struct.unpack_from("=IH", data, pos)
            if n < 16:
                break
            if t == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = pos + 20
                while a + 4 <= pos + n:
                    alen, akind = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if akind & 0x7fff == NFQA_PACKET_HDR:
                        out.append(struct.unpack_from("!I", data, a + 4)[0])
                        break
                    a += (alen + 3) & ~3
            pos += (n + 3) & ~3
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--delay", type=float, default=20.0, help="ms")
    ap.add_argument("--jitter", type=float, default=10.0, help="ms, uniform either side of --delay")
    ap.add_argument("--loss", type=float, default=2.0, help="percent of packets dropped")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    q = Queue(args.queue)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    print("ready", flush=True)
    due = []  # (time to accept, packet id)
    delayed = dropped = 0
    while not stopping:
        now = time.monotonic()
        while due and due[0][0] <= now:
            q.verdict(heapq.heappop(due)[1], NF_ACCEPT)
        wait = min(0.2, max(0.0, due[0][0] - now)) if due else 0.2
        try:
            r, _, _ = select.select([q.s], [], [], wait)
        except InterruptedError:
            continue
        if not r:
            continue
        try:
            ids = q.packets()
        except OSError:  # ENOBUFS: the kernel dropped some; fail-open lets them pass
            continue
        now = time.monotonic()
        for pid in ids:
            if rng.random() * 100 < args.loss:
                q.verdict(pid, NF_DROP)
                dropped += 1
            else:
                d = args.delay + rng.uniform(-args.jitter, args.jitter)
                heapq.heappush(due, (now + max(0.0, d) / 1000, pid))
                delayed += 1
    for _, pid in due:
        q.verdict(pid, NF_ACCEPT)
    print(f"netem_queue: {delayed} packets delayed, {dropped} dropped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
