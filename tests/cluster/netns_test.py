#!/usr/bin/env python3
"""Faults of the network between real processes: every node in a network
namespace of its own, judged by the fault suite's checker (harness.py).

The network, built and torn down here (root only):

  root namespace (this test, its writers and reader) -- veth -- hub namespace
  hub -- veth -- node i's namespace, 10.O.i.2 (ports 9092 and 9093)
  hub -- veth -- client namespaces c1 and c2, 10.O.101.2 and 10.O.102.2

The hub routes between its links (one /24 each; O is a second octet no
route of the machine uses). Cuts are iptables DROP rules in the hub's
FORWARD chain (both directions, installed at once by iptables-restore);
delay and loss are `tc netem` on every hub link or, where the kernel has no
sch_netem (a kernel without modules cannot load it, and no package brings
it), the same delay, jitter and loss given by netem_queue.py to every packet
the hub forwards (an NFQUEUE rule). Namespace and link names carry the
prefix `fjnt<pid>`; a run first deletes those of runs whose process is gone,
and its own in a finally.

Writers (idempotent, acks=all, keyed over every partition) and a reader
(from offset 0) run in the root namespace, which reaches every node
throughout. Scenarios, on one 3-node cluster (RF 3, min.insync.replicas 2)
unless said:

  partition  a partition leader (the active controller on odd cuts, another
             node on even ones) and client c1 are cut off from the other two
             nodes and client c2; each side reaches itself, the root
             namespace reaches both. c1 writes to that partition through the
             old leader: none of it may be acknowledged. The majority elects
             a new leader, and c2, a client made after the cut, gets records
             of the partition acknowledged. After the heal: every record of
             the partition sent after the cut and acknowledged is in a leader
             epoch later than the old leader's (the old leader acknowledged
             none; two leaders never wrote in one epoch), epochs never go
             backwards along any log, and the checker passes.
             --root-deadline S also requires the root writers (which reach
             both sides) to be acknowledged by the new leader within S s: an
             isolated node that still names itself leader in Metadata while
             refusing Produce as a Raft follower can hold them until the heal
             (a known issue; `make netns-faults` sets it).
  netem      20 ms +-10 ms delay and 2% loss on every link while the writers
             and the reader run: writes keep being acknowledged, the
             checker passes.
  rolling    every node in turn: SIGTERM (exit 0), out of every ISR, restart,
             back in every ISR; records are acknowledged during each step.
  five       a 5-node cluster, a topic of 5 partitions with RF 3: kill -9 of
             the leader of partition 0, a new leader, writes go on, restart,
             in sync, the checker passes.
  negative   the checker's negative control: `partition` on a cluster
             started with fjord.testing.raft.broken=ack_before_majority. The
             isolated leader acknowledges c1's records alone; the checks above
             MUST report them (acknowledged after the cut, lost after the heal).

With CI=true a run that cannot build the namespaces fails; otherwise it
says SKIPPED and exits 0.

usage: netns_test.py [--binary PATH] [--cuts N] [--root-deadline S] [--netem-seconds S]
                     [--rolling-rounds R] [--kills K] [--impair auto|netem|nfqueue]
                     [--only SCENARIO,...] [--keep]
"""

import argparse
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer

from harness import (ROOT, Cluster, Failure, Reader, Writer, check, checker, cluster_view, final_log, in_sync,
                     leader_epochs, log, wait_for)

PREFIX = "fjnt"
UPLINK = "uplink"  # the hub's link to the root namespace
CLIENT = "c1"  # on the minority side of a cut
MAJORITY_CLIENT = "c2"  # on the majority side
# Records each writer hands over every 10 ms: a few hundred a second, enough
# to see every fault and little enough to leave the brokers the CPU.
PER_ROUND = 5


def sh(*args, quiet=False):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0 and not quiet:
        raise Failure(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def ours(pid):
    """A pid that is a live run of this test."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"netns_test" in f.read()
    except OSError:
        return False


def clean_stale():
    """Deletes the namespaces and root links of runs that are gone, and ends
    the processes left in those namespaces (nodes of a run killed itself)."""
    gone = set()
    for line in sh("ip", "netns", "list", quiet=True).stdout.splitlines():
        m = re.match(rf"({PREFIX}(\d+)-\S+)", line)
        if m and not ours(int(m.group(2))):
            for pid in sh("ip", "netns", "pids", m.group(1), quiet=True).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    gone.add(f"process {pid}")
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", m.group(1), quiet=True)
            gone.add(m.group(1))
    for line in sh("ip", "-o", "link", "show", quiet=True).stdout.splitlines():
        m = re.match(rf"\d+: ({PREFIX}(\d+))[@:]", line)
        if m and not ours(int(m.group(2))):
            sh("ip", "link", "del", m.group(1), quiet=True)
            gone.add(m.group(1))
    if gone:
        log(f"netns: deleted what a crashed run left: {sorted(gone)}")


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def in_netns(ns, fn):
    """fn() on a thread moved into network namespace ns: a client made there
    (librdkafka starts its threads then) makes all its connections there."""
    out = {}

    def body():
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                out["error"] = OSError(e, f"setns into {ns}: {os.strerror(e)}")
                return
        finally:
            os.close(fd)
        try:
            out["value"] = fn()
        except Exception as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


class Net:
    """The hub, the node namespaces n1..nN and the client namespace c1."""

    def __init__(self, nodes, impair_mode):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.names = [f"n{i}" for i in range(1, nodes + 1)] + [CLIENT, MAJORITY_CLIENT]
        self.octet = None
        self.impair_mode = impair_mode
        self.delayer = None
        self.made = []

    def ns(self, name):
        return f"{self.tag}-{name}"

    def index(self, name):
        return 100 + int(name[1:]) if name.startswith("c") else int(name[1:])

    def subnet(self, name):
        return f"10.{self.octet}.{self.index(name)}.0/24"

    def host(self, name):
        return f"10.{self.octet}.{self.index(name)}.2"

    def hub(self, *args, quiet=False):
        return sh("ip", "netns", "exec", self.ns("hub"), *args, quiet=quiet)

    def up(self):
        routes = sh("ip", "-4", "route", "show", "table", "all").stdout + sh("ip", "-4", "addr").stdout
        for k in range(64):
            o = 64 + (os.getpid() + k) % 64
            if f" 10.{o}." not in routes and f"\n10.{o}." not in "\n" + routes:
                self.octet = o
                break
        check(self.octet is not None, "no free 10.x.0.0/16 for the test network")
        hub = self.ns("hub")
        sh("ip", "netns", "add", hub)
        self.made.append(hub)
        sh("ip", "-n", hub, "link", "set", "lo", "up")
        self.hub("sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "link", "add", self.tag, "type", "veth", "peer", "name", UPLINK, "netns", hub)
        sh("ip", "addr", "add", f"10.{self.octet}.0.1/24", "dev", self.tag)
        sh("ip", "link", "set", self.tag, "up")
        sh("ip", "-n", hub, "addr", "add", f"10.{self.octet}.0.2/24", "dev", UPLINK)
        sh("ip", "-n", hub, "link", "set", UPLINK, "up")
        sh("ip", "route", "add", f"10.{self.octet}.0.0/16", "via", f"10.{self.octet}.0.2")
        for name in self.names:
            ns = self.ns(name)
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", hub, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns)
            i = self.index(name)
            sh("ip", "-n", hub, "addr", "add", f"10.{self.octet}.{i}.1/24", "dev", name)
            sh("ip", "-n", hub, "link", "set", name, "up")
            sh("ip", "-n", ns, "addr", "add", f"10.{self.octet}.{i}.2/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", f"10.{self.octet}.{i}.1")
        for chain in ("FJPART", "FJIMPAIR"):
            self.hub("iptables", "-N", chain)
            self.hub("iptables", "-A", "FORWARD", "-j", chain)
        if self.impair_mode == "auto":
            probe = self.hub("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", quiet=True)
            self.impair_mode = "netem" if probe.returncode == 0 else "nfqueue"
            self.hub("tc", "qdisc", "del", "dev", "lo", "root", quiet=True)
        log(f"netns: hub {hub}, nodes and client on 10.{self.octet}.0.0/16, delay and loss by {self.impair_mode}")

    def down(self):
        self.unimpair()
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, quiet=True)
        sh("ip", "link", "del", self.tag, quiet=True)
        self.made = []

    def cut(self, side_a, side_b):
        """Drops every packet between a host of side_a and one of side_b (one
        atomic iptables-restore, both directions)."""
        rules = ["*filter"]
        for a in side_a:
            for b in side_b:
                rules.append(f"-A FJPART -s {self.subnet(a)} -d {self.subnet(b)} -j DROP")
                rules.append(f"-A FJPART -s {self.subnet(b)} -d {self.subnet(a)} -j DROP")
        rules.append("COMMIT")
        r = subprocess.run(["ip", "netns", "exec", self.ns("hub"), "iptables-restore", "--noflush"],
                           input="\n".join(rules) + "\n", capture_output=True, text=True)
        check(r.returncode == 0, f"iptables-restore: {r.stderr.strip()}")

    def heal(self):
        self.hub("iptables", "-F", "FJPART")

    def impair(self, delay_ms, jitter_ms, loss_pct):
        if self.impair_mode == "netem":
            for name in [UPLINK] + self.names:
                self.hub("tc", "qdisc", "add", "dev", name, "root", "netem", "delay", f"{delay_ms}ms",
                         f"{jitter_ms}ms", "loss", f"{loss_pct}%")
            return
        self.delayer = subprocess.Popen(
            ["ip", "netns", "exec", self.ns("hub"), sys.executable, os.path.join(os.path.dirname(__file__),
             "netem_queue.py"), "--queue", "0", "--delay", str(delay_ms), "--jitter", str(jitter_ms),
             "--loss", str(loss_pct)], stdout=subprocess.PIPE, text=True)
        line = self.delayer.stdout.readline()
        check(line.strip() == "ready", f"netem_queue.py did not start: {line!r}")
        self.hub("iptables", "-A", "FJIMPAIR", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass")

    def unimpair(self):
        """Ends delay and loss; returns netem_queue.py's counts line, if it ran."""
        if self.impair_mode == "netem" and self.octet is not None and self.made:
            for name in [UPLINK] + self.names:
                self.hub("tc", "qdisc", "del", "dev", name, "root", quiet=True)
        if self.made:
            self.hub("iptables", "-F", "FJIMPAIR", quiet=True)
        if self.delayer:
            self.delayer.send_signal(signal.SIGTERM)
            out = self.delayer.communicate(timeout=10)[0].strip()
            self.delayer = None
            return out
        return ""


def netns_cluster(args, net, work, n, extra=None):
    names = [f"n{i}" for i in range(1, n + 1)]
    # A stopped follower leaves the ISR after 2 s (the rolling restart waits
    # for that before each restart).
    conf = {"replica.lag.time.max.ms": "2000"}
    conf.update(extra or {})
    cl = Cluster(args.binary, work, conf, n=n, hosts=[net.host(x) for x in names],
                 netns=[net.ns(x) for x in names])
    cl.names = {x.id: names[i] for i, x in enumerate(cl.nodes)}
    return cl


def acked_since(writers, t, partition=None):
    return [a for w in writers for a in w.acked
            if w.sent_at[a[2]] > t and (partition is None or a[0] == partition)]


def seconds_to(count, writers, t, partition):
    """Seconds from t until count records of partition, sent after t, had
    been acknowledged to writers (None: not so many yet)."""
    times = sorted(w.acked_at[v] for w in writers for p, _, v in w.acked
                   if p == partition and w.sent_at[v] > t)
    return times[count - 1] - t if len(times) >= count else None


class Partition:
    """Scenario `partition`: run() cuts off a partition leader (the active
    controller too when controller is true, else a node that is not) with
    client c1, writes on both sides, heals and waits until in sync;
    judge(final log) gives its problems."""

    def __init__(self, cl, net, topic, writers, controller=True, broken=False):
        self.cl, self.net, self.topic, self.writers = cl, net, topic, list(writers)
        self.controller = controller
        self.broken = broken
        self.minority = None

    def victim(self, either=False):
        """(node, a partition it leads), the node the active controller or
        not (either: whichever leads a partition)."""
        v = self.cl.view()
        leaders = v["topics"][self.topic]
        for p, l in sorted(leaders.items()):
            if l >= 0 and (either or (l == v["controller"]) == self.controller):
                return self.cl.node(l), p
        return None

    def run(self, number, root_deadline_s=0):
        """root_deadline_s > 0 also requires the root namespace's writers,
        which reach both sides, to have records of the partition
        acknowledged by the new leader within that many seconds."""
        cl, net, topic = self.cl, self.net, self.topic
        what = "the active controller" if self.controller else "not the controller"
        try:
            old, p = wait_for(f"a partition led by a node that is {what}", self.victim, timeout=10)
        except Failure:  # the controller leads them all, say
            old, p = wait_for("a partition led", lambda: self.victim(either=True), timeout=30)
            what = "the active controller" if old.id == self.cl.view()["controller"] else "not the controller"
        self.p = p
        majority = [x for x in cl.nodes if x is not old]

        def client_in(ns):
            return lambda conf: in_netns(net.ns(ns), lambda: Producer(conf))

        # Its records time out after 4 s: the old leader steps down (check
        # quorum, one election timeout) well before, and a broken one
        # acknowledges at once.
        self.minority = Writer(old.bootstrap, topic, f"minority{number}", timeout_ms=4000,
                               make_producer=client_in(CLIENT))
        self.minority.write(5, partition=p)
        check(self.minority.p.flush(30) == 0 and len(self.minority.acked) == 5,
              f"client {CLIENT} could not write to partition {p} before the cut: {self.minority.failed[:3]}")
        self.before = len(self.minority.acked)
        self.last_before = self.minority.acked[-1][2]
        # The judge takes the epoch of that record for the old leader's: every
        # node must still name it leader, elected in that epoch (checked then).
        check(all(cluster_view(x)["topics"][topic][p] == old.id for x in cl.nodes),
              f"the leader of partition {p} moved before the cut: {[cluster_view(x)['topics'][topic] for x in cl.nodes]}")
        leader, self.old_epoch_named = leader_epochs(old, topic)[p]
        check(leader == old.id and self.old_epoch_named >= 1,
              f"node {old.id} names leader {leader} in epoch {self.old_epoch_named} for partition {p}")
        net.cut([cl.names[old.id], CLIENT], [cl.names[x.id] for x in majority] + [MAJORITY_CLIENT])
        # After the rules are in: a record handed to a client from now on can
        # reach the other nodes only through a new leader.
        self.t_cut = time.monotonic()
        log(f"partition {number}: node {old.id} ({what}, leader of partition {p}) and client {CLIENT} cut off "
            f"from nodes {[x.id for x in majority]} and client {MAJORITY_CLIENT}")
        self.minority.write(10, partition=p)
        moved = wait_for(f"a new leader of partition {p} on the majority side",
                         lambda: (lambda l: l if l[p] not in (-1, old.id) else None)(
                             cl.leaders(topic, asked=majority)), timeout=30)
        took = time.monotonic() - self.t_cut
        # A client on the majority side, once the majority names the new
        # leader: one that knew the old leader would first wait out its silent
        # requests or connection attempts (librdkafka's timeouts), which says
        # nothing of the cluster.
        self.majority = Writer(",".join(x.bootstrap for x in majority), topic, f"majority{number}",
                               make_producer=client_in(MAJORITY_CLIENT), per_round=PER_ROUND)
        self.majority.start()
        failed0 = sum(len(w.failed) for w in self.writers)
        self.minority.write(10, partition=p)
        try:
            wait_for(f"records of partition {p} acknowledged after the cut by the new leader to client "
                     f"{MAJORITY_CLIENT}", lambda: len(acked_since([self.majority], self.t_cut, p)) >= 20, timeout=30)
        except Failure:
            self.diagnose(p)
            raise
        took_acks = seconds_to(20, [self.majority], self.t_cut, p)
        left = self.minority.p.flush(30)
        check(left == 0, f"client {CLIENT}'s writes neither acknowledged nor failed: {left}")
        after = self.minority.acked[self.before:]
        root_failed = sum(len(w.failed) for w in self.writers) - failed0
        # The root namespace's writers reach both sides: the isolated node
        # may hold them (its Metadata may still name itself leader).
        root_took = seconds_to(20, self.writers, self.t_cut, p)
        log(f"partition {number}: partition {p} led by node {moved[p]} after {took:.1f} s; the first 20 records of "
            f"it acknowledged after {took_acks:.1f} s to client {MAJORITY_CLIENT} (made then), after "
            f"{'(not yet)' if root_took is None else f'{root_took:.1f} s'} to the root writers ({root_failed} of "
            f"theirs failed); client {CLIENT}'s {self.minority.sent - self.before} writes: {len(after)} "
            f"acknowledged, {len(self.minority.failed)} failed ({sorted(set(self.minority.failed))[:2]})")
        if root_deadline_s > 0 and (root_took is None or root_took > root_deadline_s):
            self.diagnose(p)
            raise Failure(f"the root namespace's writers, which reach both sides, had no 20 records of partition "
                          f"{p} acknowledged in the {root_deadline_s} s after the cut "
                          f"({'not yet' if root_took is None else f'{root_took:.1f} s'})")
        net.heal()
        t_heal = time.monotonic()
        self.old = old
        if not self.broken:
            wait_for("all replicas in sync after the heal", lambda: in_sync(cl.nodes, topic), timeout=90)
            log(f"partition {number}: healed; all replicas in sync after {time.monotonic() - t_heal:.1f} s")
        else:
            # A leader that acknowledged alone has a commit offset the new
            # leader's log contradicts: its own assertions may stop it.
            wait_for("all replicas in sync after the heal, or the old leader stopped",
                     lambda: not old.alive() or in_sync(cl.nodes, topic), timeout=90)
            if not old.alive():
                said = [line for line in old.log_text().splitlines() if "assertion failed" in line]
                log(f"partition {number}: healed; the old leader, node {old.id}, stopped: {said[-1:]}")
                wait_for(f"partition {p} led by a live node",
                         lambda: (lambda l: l[p] in [x.id for x in cl.live()])(cl.leaders(topic)), timeout=60)
            else:
                log(f"partition {number}: healed; all replicas in sync after {time.monotonic() - t_heal:.1f} s")
        self.majority.finish()

    def diagnose(self, p):
        """What every node says, and every writer's state."""
        for x in self.cl.nodes:
            try:
                v = cluster_view(x)
                log(f"  node {x.id} says: brokers {v['brokers']}, controller {v['controller']}, leaders "
                    f"{v['topics'].get(self.topic)}, isr {v['isr'].get(self.topic)}")
            except Exception as e:  # report and go on
                log(f"  node {x.id}: no answer ({e})")
        for w in self.writers + [self.minority, self.majority]:
            log(f"  writer {w.name}: {len(w.acked)} acknowledged, {len(w.failed)} failed "
                f"{sorted(set(w.failed))[:2]}, fatal {w.fatal}")

    def judge(self, final):
        problems = []
        epoch = {v: (p, o, e) for p, records in final.items() for o, v, e in records}
        old_epoch = epoch[self.last_before][2] if self.last_before in epoch else None
        if old_epoch is None:
            problems.append(f"the old leader's last record before the cut ({self.last_before}) is gone")
            return problems
        if old_epoch != self.old_epoch_named:
            problems.append(f"the last record before the cut ({self.last_before}) is in leader epoch {old_epoch}, "
                            f"but the metadata named node {self.old.id} leader in epoch {self.old_epoch_named}")
        for p, o, v in self.minority.acked[self.before:]:
            problems.append(f"acknowledged by the isolated old leader (node {self.old.id}) after the cut: {v} at "
                            f"{p}/{o}, now {'in epoch ' + str(epoch[v][2]) if v in epoch else 'lost'}")
        for p, o, v in acked_since(self.writers + [self.minority, self.majority], self.t_cut, self.p):
            if v in epoch and epoch[v][2] <= old_epoch:
                problems.append(f"{v}, sent after the cut, acknowledged at {p}/{o} in leader epoch {epoch[v][2]}, "
                                f"not after the old leader's epoch {old_epoch}")
        return problems


def netem(cl, net, topic, writers, seconds, delay_ms=20, jitter_ms=10, loss_pct=2):
    n0 = sum(len(w.acked) for w in writers)
    net.impair(delay_ms, jitter_ms, loss_pct)
    counts = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(min(1.0, seconds / 4))
            counts.append(sum(len(w.acked) for w in writers))
    finally:
        summary = net.unimpair()
    steps = [b - a for a, b in zip([n0] + counts, counts)]
    log(f"netem: {delay_ms} ms +-{jitter_ms} ms, {loss_pct}% loss for {seconds} s: acknowledged per interval {steps}"
        + (f"; {summary}" if summary else ""))
    check(sum(steps) >= 50, f"only {sum(steps)} records acknowledged under delay and loss")
    half = len(steps) // 2
    check(sum(steps[:half]) > 0 and sum(steps[half:]) > 0, f"writes stalled under delay and loss: {steps}")
    wait_for("all replicas in sync after delay and loss", lambda: in_sync(cl.nodes, topic), timeout=60)


def rolling(cl, topic, writers, rounds):
    for r in range(rounds):
        for x in cl.nodes:
            n0 = sum(len(w.acked) for w in writers)
            t0 = time.monotonic()
            rc = x.stop()
            check(rc == 0, f"node {x.id} exited with {rc} on SIGTERM under load")
            # Out of every ISR first (replica.lag.time.max.ms): back in them
            # then means caught up, not a leader that has not noticed yet.
            wait_for(f"node {x.id} out of every ISR",
                     lambda: (lambda v: all(x.id not in isr for isr in v["isr"][topic].values()))(cl.view()),
                     timeout=30)
            x.start()
            wait_for(f"all replicas in sync after node {x.id}'s restart", lambda: in_sync(cl.nodes, topic), timeout=90)
            # Writes keep being acknowledged: some during the step, more after.
            wait_for("records acknowledged since the restart began",
                     lambda: sum(len(w.acked) for w in writers) > n0 + 20, timeout=30)
            log(f"rolling {r + 1}/{rounds}: node {x.id} stopped (exit 0), restarted, in sync after "
                f"{time.monotonic() - t0:.1f} s; {sum(len(w.acked) for w in writers) - n0} acknowledged meanwhile")


def judge(writers, reader, topic, partitions, bootstrap, extra_judges=()):
    for w in writers:
        w.finish()
    reader.finish()
    acked = [a for w in writers for a in w.acked]
    failed = sum(len(w.failed) for w in writers)
    final, ends = final_log(bootstrap, topic, partitions)
    problems = checker(acked, reader.seen, final)
    # A correct cluster never makes an idempotent producer give up
    # (an out-of-order sequence after a lost acknowledged batch, say).
    problems += [f"writer {w.name}: {w.fatal}" for w in writers if w.fatal]
    for j in extra_judges:
        problems += j(final)
    epochs = {p: sorted({e for _, _, e in records}) for p, records in final.items()}
    log(f"checker: {len(acked)} acknowledged ({failed} failed), {len(reader.seen)} read during the faults, "
        f"log ends {ends}, leader epochs {epochs}: {len(problems)} problems")
    return problems, acked


def all_well(cl):
    """A correct cluster's nodes are all running and none failed an assertion."""
    for x in cl.nodes:
        check(x.alive(), f"node {x.id} is not running")
        bad = [line for line in x.log_text().splitlines() if "assertion failed" in line]
        check(not bad, f"node {x.id}: {bad[:3]}")


def three_nodes(args, net, work):
    cl = netns_cluster(args, net, os.path.join(work, "three"), 3)
    topic = "checked"
    try:
        leaders = cl.start(topic)
        log(f"three: cluster up in namespaces, leaders {leaders}")
        writers = [Writer(cl.bootstrap, topic, f"w{i}", per_round=PER_ROUND) for i in range(2)]
        reader = Reader(cl.bootstrap, topic)
        for t in writers + [reader]:
            t.start()
        time.sleep(1)
        judges = []
        if "partition" in args.only:
            for k in range(args.cuts):
                # The active controller first (its partition and the metadata
                # quorum lose their leader at once), then another leader.
                s = Partition(cl, net, topic, writers, controller=k % 2 == 0)
                s.run(k + 1, args.root_deadline)
                judges.append(s.judge)
                writers += [s.minority, s.majority]  # their records are checked with the rest
        if "netem" in args.only:
            netem(cl, net, topic, writers[:2], args.netem_seconds)
        if "rolling" in args.only:
            rolling(cl, topic, writers[:2], args.rolling_rounds)
        time.sleep(0.5)
        problems, acked = judge(writers, reader, topic, 3, cl.bootstrap, judges)
        check(not problems, "unsafe history:\n  " + "\n  ".join(problems[:20]))
        check(len(acked) > 300, f"only {len(acked)} records acknowledged: the scenarios tested too little")
        all_well(cl)
    finally:
        cl.stop()


def five_nodes(args, net, work):
    cl = netns_cluster(args, net, os.path.join(work, "five"), 5)
    topic = "five"
    try:
        leaders = cl.start(topic, partitions=5, replication_factor=3)
        log(f"five: 5 nodes up, RF 3, leaders {leaders}")
        writers = [Writer(cl.bootstrap, topic, f"f{i}", per_round=PER_ROUND) for i in range(2)]
        reader = Reader(cl.bootstrap, topic, partitions=5)
        for t in writers + [reader]:
            t.start()
        time.sleep(1)
        for k in range(args.kills):
            victim = cl.node(cl.leaders(topic)[0])
            t0 = time.monotonic()
            victim.kill()
            moved = wait_for("a new leader of partition 0", lambda: (lambda l: l if l[0] not in (-1, victim.id)
                                                                    else None)(cl.leaders(topic)), timeout=30)
            took = time.monotonic() - t0
            wait_for("records of partition 0 acknowledged after the kill",
                     lambda: len(acked_since(writers, t0, 0)) >= 10, timeout=30)
            victim.start()
            wait_for("all replicas in sync again", lambda: in_sync(cl.nodes, topic), timeout=90)
            log(f"five: kill {k + 1}/{args.kills}: node {victim.id} killed; partition 0 led by {moved[0]} after "
                f"{took:.1f} s; restarted and in sync after {time.monotonic() - t0:.1f} s")
        time.sleep(0.5)
        problems, acked = judge(writers, reader, topic, 5, cl.bootstrap)
        check(not problems, "unsafe history:\n  " + "\n  ".join(problems[:20]))
        check(len(acked) > 100, f"only {len(acked)} records acknowledged: the scenario tested too little")
        all_well(cl)
    finally:
        cl.stop()


def negative(args, net, work):
    cl = netns_cluster(args, net, os.path.join(work, "broken"), 3,
                       {"fjord.testing.raft.broken": "ack_before_majority"})
    topic = "control"
    try:
        cl.start(topic)
        writers = [Writer(cl.bootstrap, topic, "w0", per_round=PER_ROUND)]
        reader = Reader(cl.bootstrap, topic)
        for t in writers + [reader]:
            t.start()
        s = Partition(cl, net, topic, writers, broken=True)
        s.run(1)
        check(s.minority.acked[s.before:], "the broken leader acknowledged nothing alone: the control tests nothing")
        live = ",".join(x.bootstrap for x in cl.live())
        problems, _ = judge(writers + [s.minority, s.majority], reader, topic, 3, live, [s.judge])
        check(problems, "the checker did not catch records acknowledged before a majority had them")
        kinds = {"acknowledged after the cut by the isolated leader": sum("isolated old leader" in p for p in problems),
                 "acknowledged and lost": sum(p.endswith("lost") for p in problems),
                 "acknowledged in the old epoch after the cut": sum("not after the old leader" in p for p in problems)}
        log(f"negative control: ack_before_majority caught: {len(problems)} problems {kinds}")
        for p in problems[:5]:
            log(f"  {p}")
    finally:
        cl.stop()


def prerequisites(ci):
    """None when namespaces, veth and iptables work; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables", "iptables-restore", "tc"):
        if not shutil.which(tool):
            return f"{tool} not found (tools/install-deps.sh installs iproute2 and iptables)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    r = sh("ip", "netns", "add", probe, quiet=True)
    if r.returncode != 0:
        return f"ip netns add: {r.stderr.strip()}"
    try:
        for cmd in (["ip", "-n", probe, "link", "add", "name", "probe0", "type", "veth", "peer", "name", "probe1"],
                    ["ip", "netns", "exec", probe, "iptables", "-L", "FORWARD"]):
            r = sh(*cmd, quiet=True)
            if r.returncode != 0:
                return f"{' '.join(cmd)}: {r.stderr.strip()}"
    finally:
        sh("ip", "netns", "del", probe, quiet=True)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/src/app/fjord"))
    ap.add_argument("--cuts", type=int, default=1, help="partitions of a leader, one after another")
    ap.add_argument("--root-deadline", type=float, default=0,
                    help="also require the root namespace's writers (reaching both sides of a cut) to be "
                         "acknowledged by the new leader within this many seconds (0: only logged)")
    ap.add_argument("--netem-seconds", type=float, default=4)
    ap.add_argument("--rolling-rounds", type=int, default=1)
    ap.add_argument("--kills", type=int, default=1, help="leader kills on the 5-node cluster")
    ap.add_argument("--impair", choices=("auto", "netem", "nfqueue"), default="auto")
    ap.add_argument("--only", default="partition,netem,rolling,five,negative")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.only = set(args.only.split(","))
    ci = os.environ.get("CI", "false") == "true"
    why = prerequisites(ci)
    if why:
        if ci:
            log(f"netns_test: FAILED: cannot build the test network under CI: {why}")
            return 1
        log(f"netns_test: SKIPPED: {why}")
        return 0
    clean_stale()
    work = tempfile.mkdtemp(prefix="fjord-netns-")
    net = Net(5 if "five" in args.only else 3, args.impair)
    ok = False
    t0 = time.monotonic()
    try:
        net.up()
        if args.only & {"partition", "netem", "rolling"}:
            three_nodes(args, net, work)
        if "five" in args.only:
            five_nodes(args, net, work)
        if "negative" in args.only:
            negative(args, net, work)
        ok = True
        log(f"netns_test: all checks passed in {time.monotonic() - t0:.0f} s")
    except Failure as e:
        log(f"netns_test: FAILED: {e}")
        for sub in ("three", "five", "broken"):
            for i in range(1, 6):
                path = os.path.join(work, sub, f"node-{i}.log")
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        log(f"---- {sub} node {i} log (tail)\n" + "".join(f.readlines()[-20:]))
    finally:
        net.down()
        if args.keep or not ok:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
