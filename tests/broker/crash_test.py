#!/usr/bin/env python3
"""Crash test: acks=all records survive SIGKILL of the fjord binary.

Starts `fjord start` as a subprocess on a fresh log directory, runs one
producer per partition (a raw Kafka connection, Produce v3, acks=-1, up to
--inflight requests pipelined, never retrying: the equivalent of
enable.idempotence=false with retries=0), SIGKILLs the broker at a random
moment (seeded), restarts it on the same directory and reads every partition
back with Fetch. After every restart:

  * every acknowledged record is present, exactly once, at the offset its
    acknowledgement reported;
  * every present record is one that was sent, none twice, in send order;
  * a batch is all there or not at all (no torn batch survives recovery);
  * every batch's CRC-32C is valid;
  * what the previous restart showed is a prefix of what this one shows (a
    process crash loses nothing the kernel already had).

The last round stops the broker with SIGTERM and checks it exits 0 and that
a final restart still holds everything.

Stdlib only (the Kafka wire format is written by hand below), so ctest needs
nothing but python3. Usage: crash_test.py --fjord PATH [--rounds N] [--seed S]
"""
import argparse
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

TOPIC = "crash"

# ---------------------------------------------------------------------------
# CRC-32C: tests/lib/crc32c.py
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from crc32c import crc32c  # noqa: E402


# ---------------------------------------------------------------------------
# Wire helpers.
def zigzag_varint(v):
    v = (v << 1) ^ (v >> 63)
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def read_varint(buf, pos):
    shift = 0
    result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
    return (result >> 1) ^ -(result & 1), pos


def kstring(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def encode_batch(records, timestamp_ms):
    """One uncompressed v2 record batch of (key, value) pairs."""
    body = bytearray()
    for i, (key, value) in enumerate(records):
        rec = bytearray()
        rec += b"\x00"  # attributes
        rec += zigzag_varint(0)  # timestamp delta
        rec += zigzag_varint(i)  # offset delta
        rec += zigzag_varint(len(key)) + key
        rec += zigzag_varint(len(value)) + value
        rec += zigzag_varint(0)  # headers
        body += zigzag_varint(len(rec)) + rec
    after_crc = struct.pack(">hiqqqhii", 0, len(records) - 1, timestamp_ms, timestamp_ms, -1, -1, -1, len(records))
    after_crc += body
    crc = crc32c(after_crc)
    # batchLength counts from partitionLeaderEpoch to the end.
    head = struct.pack(">qiibI", 0, 4 + 1 + 4 + len(after_crc), -1, 2, crc)
    return head + after_crc


def decode_batches(buf):
    """Yields (base_offset, [(offset, key, value)]) for each whole batch."""
    pos = 0
    while pos + 12 <= len(buf):
        base_offset, length = struct.unpack_from(">qi", buf, pos)
        if pos + 12 + length > len(buf):
            break  # a partial batch at the end of the response
        batch = buf[pos : pos + 12 + length]
        pos += 12 + length
        _epoch, magic, crc = struct.unpack_from(">ibI", batch, 12)
        if magic != 2:
            raise AssertionError(f"batch at {base_offset}: magic {magic}")
        if crc32c(batch[21:]) != crc:
            raise AssertionError(f"batch at {base_offset}: CRC-32C mismatch")
        attributes, last_delta = struct.unpack_from(">hi", batch, 21)
        if attributes & 7:
            raise AssertionError(f"batch at {base_offset}: compressed, but the test sends none")
        (count,) = struct.unpack_from(">i", batch, 57)
        if count != last_delta + 1:
            raise AssertionError(f"batch at {base_offset}: {count} records but last offset delta {last_delta}")
        rpos = 61
        out = []
        for _ in range(count):
            length, rpos = read_varint(batch, rpos)
            end = rpos + length
            rpos += 1  # attributes
            _ts, rpos = read_varint(batch, rpos)
            odelta, rpos = read_varint(batch, rpos)
            klen, rpos = read_varint(batch, rpos)
            key = bytes(batch[rpos : rpos + klen]) if klen >= 0 else None
            rpos += max(klen, 0)
            vlen, rpos = read_varint(batch, rpos)
            value = bytes(batch[rpos : rpos + vlen]) if vlen >= 0 else None
            rpos += max(vlen, 0)
            rpos = end
            out.append((base_offset + odelta, key, value))
        if rpos != len(batch):
            raise AssertionError(f"batch at {base_offset}: {len(batch) - rpos} trailing bytes")
        yield base_offset, out


class Conn:
    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation = 0

    def close(self):
        self.sock.close()

    def send(self, api_key, version, body):
        self.correlation += 1
        header = struct.pack(">hhi", api_key, version, self.correlation) + kstring("crash-test")
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        return self.correlation

    def _read(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the broker")
            out += chunk
        return bytes(out)

    def receive(self, correlation):
        (size,) = struct.unpack(">i", self._read(4))
        frame = self._read(size)
        (got,) = struct.unpack_from(">i", frame, 0)
        if got != correlation:
            raise AssertionError(f"correlation id {got}, expected {correlation}")
        return frame[4:]

    def call(self, api_key, version, body):
        return self.receive(self.send(api_key, version, body))


def metadata_v4(conn, topic):
    """Returns (topic error code, partition count); creates the topic if needed."""
    body = struct.pack(">i", 1) + kstring(topic) + b"\x01"
    r = conn.call(3, 4, body)
    pos = 4  # throttle
    (nbrokers,) = struct.unpack_from(">i", r, pos)
    pos += 4
    for _ in range(nbrokers):
        pos += 4
        (hl,) = struct.unpack_from(">h", r, pos)
        pos += 2 + hl + 4
        (rl,) = struct.unpack_from(">h", r, pos)
        pos += 2 + max(rl, 0)
    (cl,) = struct.unpack_from(">h", r, pos)
    pos += 2 + max(cl, 0) + 4
    (ntopics,) = struct.unpack_from(">i", r, pos)
    pos += 4
    err, nl = struct.unpack_from(">hh", r, pos)
    pos += 4 + nl + 1
    (nparts,) = struct.unpack_from(">i", r, pos)
    return err, nparts


def produce_v3_body(topic, partition, batch):
    body = struct.pack(">h", -1)  # transactional id: null
    body += struct.pack(">hi", -1, 30000)  # acks=all, timeout
    body += struct.pack(">i", 1) + kstring(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(batch)) + batch
    return body


def parse_produce_v3(r):
    pos = 0
    (nt,) = struct.unpack_from(">i", r, pos)
    pos += 4
    assert nt == 1, nt
    (nl,) = struct.unpack_from(">h", r, pos)
    pos += 2 + nl
    (np_,) = struct.unpack_from(">i", r, pos)
    pos += 4
    assert np_ == 1, np_
    _index, err, base_offset, _append_time = struct.unpack_from(">ihqq", r, pos)
    return err, base_offset


def fetch_all(port, topic, partition):
    """Every record of one partition, as [(offset, key, value)], and batches as [[offsets]]."""
    conn = Conn(port)
    records = []
    batches = []
    offset = 0
    try:
        while True:
            body = struct.pack(">iiiib", -1, 0, 1, 4 << 20, 0)
            body += struct.pack(">i", 1) + kstring(topic)
            body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 4 << 20)
            r = conn.call(1, 4, body)
            pos = 4
            (nt,) = struct.unpack_from(">i", r, pos)
            pos += 4
            (nl,) = struct.unpack_from(">h", r, pos)
            pos += 2 + nl
            pos += 4  # partition count (1)
            _p, err, hw, _lso = struct.unpack_from(">ihqq", r, pos)
            pos += 4 + 2 + 8 + 8
            (naborted,) = struct.unpack_from(">i", r, pos)
            pos += 4 + max(naborted, 0) * 16
            (rl,) = struct.unpack_from(">i", r, pos)
            pos += 4
            data = r[pos : pos + max(rl, 0)]
            if err != 0:
                raise AssertionError(f"fetch {topic}-{partition} at {offset}: error {err}")
            if offset >= hw:
                return records, batches, hw
            got = False
            for base, recs in decode_batches(data):
                if base + len(recs) <= offset:
                    continue
                got = True
                batches.append([o for o, _, _ in recs])
                for rec in recs:
                    if rec[0] >= offset:
                        records.append(rec)
                offset = recs[-1][0] + 1
            if not got:
                raise AssertionError(f"fetch {topic}-{partition} at {offset} < hw {hw} returned no batch")
    finally:
        conn.close()


# ---------------------------------------------------------------------------
class Broker:
    def __init__(self, binary, log_dir, partitions, smp):
        self.binary = binary
        self.log_dir = log_dir
        self.partitions = partitions
        self.smp = smp
        self.proc = None
        self.port = None
        self.log_path = os.path.join(os.path.dirname(log_dir), "broker.log")

    def start(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        log = open(self.log_path, "ab")
        log.write(f"\n==== start on port {self.port} ====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [
                self.binary,
                "start",
                "--smp",
                str(self.smp),
                "--log-dirs",
                self.log_dir,
                "--override",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override",
                f"num.partitions={self.partitions}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited with {self.proc.returncode} at start-up; see {self.log_path}")
            try:
                c = Conn(self.port, timeout=2)
                try:
                    err, n = metadata_v4(c, TOPIC)
                finally:
                    c.close()
                if err == 0 and n == self.partitions:
                    return
            except (OSError, ConnectionError, struct.error):
                pass
            time.sleep(0.05)
        raise AssertionError("broker did not become ready in 20 s")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("broker did not stop within 30 s of SIGTERM")


class PartitionProducer(threading.Thread):
    """Sends numbered records to one partition until stopped or disconnected."""

    def __init__(self, port, partition, seq_start, rng, inflight, stop_event, round_no):
        super().__init__(daemon=True)
        self.port = port
        self.partition = partition
        self.seq = seq_start
        self.rng = rng
        self.inflight = inflight
        self.stop_event = stop_event
        self.round_no = round_no
        self.sent = []  # [(values of one batch)] in send order
        self.acked = []  # [(base_offset, values)]
        self.errors = []  # broker error codes (a failed ack, not a lost connection)

    def value(self, seq):
        return f"p{self.partition}-s{seq:09d}-r{self.round_no}".encode()

    def run(self):
        try:
            conn = Conn(self.port)
        except OSError:
            return
        pending = []  # [(correlation, values)]
        try:
            while not self.stop_event.is_set() or pending:
                while not self.stop_event.is_set() and len(pending) < self.inflight:
                    n = self.rng.randint(1, 8)
                    values = [self.value(self.seq + i) for i in range(n)]
                    self.seq += n
                    batch = encode_batch([(b"k" + v[:12], v) for v in values], int(time.time() * 1000))
                    self.sent.append(values)
                    corr = conn.send(0, 3, produce_v3_body(TOPIC, self.partition, batch))
                    pending.append((corr, values))
                if not pending:
                    break
                corr, values = pending.pop(0)
                err, base = parse_produce_v3(conn.receive(corr))
                if err == 0:
                    self.acked.append((base, values))
                else:
                    self.errors.append(err)
        except (OSError, ConnectionError, struct.error):
            pass  # the broker died: what is pending is unacknowledged
        finally:
            conn.close()


def check_partition(p, records, batches, sent_batches, acked, previous):
    """Raises AssertionError on any violation; returns the records for the next round's prefix check."""
    sent_index = {}  # value -> (batch number, position)
    for bi, values in enumerate(sent_batches):
        for i, v in enumerate(values):
            sent_index[v] = (bi, i)
    # Offsets contiguous from 0.
    for i, (off, _k, _v) in enumerate(records):
        if off != i:
            raise AssertionError(f"partition {p}: offset {off} at position {i} (gap or reorder)")
    seen = set()
    last_batch = -1
    for off, key, value in records:
        if value not in sent_index:
            raise AssertionError(f"partition {p} offset {off}: value {value!r} was never sent")
        if value in seen:
            raise AssertionError(f"partition {p} offset {off}: value {value!r} is present twice")
        seen.add(value)
        if key != b"k" + value[:12]:
            raise AssertionError(f"partition {p} offset {off}: key {key!r} does not match value {value!r}")
        bi, _ = sent_index[value]
        if bi < last_batch:
            raise AssertionError(f"partition {p} offset {off}: batch {bi} after batch {last_batch} (out of order)")
        last_batch = bi
    # Whole batches only: each sent batch is fully present or fully absent.
    present_by_batch = {}
    for _off, _k, value in records:
        bi, _ = sent_index[value]
        present_by_batch[bi] = present_by_batch.get(bi, 0) + 1
    for bi, count in present_by_batch.items():
        if count != len(sent_batches[bi]):
            raise AssertionError(f"partition {p}: batch {bi} is torn ({count} of {len(sent_batches[bi])} records)")
    # Every acknowledged record at the offset its ack reported.
    by_offset = {off: value for off, _k, value in records}
    for base, values in acked:
        for i, v in enumerate(values):
            if by_offset.get(base + i) != v:
                raise AssertionError(
                    f"partition {p}: acknowledged record {v!r} at offset {base + i} is "
                    f"{'missing' if v not in seen else 'elsewhere'} (found {by_offset.get(base + i)!r})"
                )
    # What the previous restart showed is still there, unchanged.
    if previous is not None:
        if [(o, v) for o, _k, v in records[: len(previous)]] != previous:
            raise AssertionError(f"partition {p}: the log after the previous restart is not a prefix of this one")
    return [(o, v) for o, _k, v in records]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fjord", required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FJORD_CRASH_SEED", "20240611")))
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--inflight", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="fjord-crash-test-")
    log_dir = os.path.join(work, "data")
    broker = Broker(os.path.abspath(args.fjord), log_dir, args.partitions, args.smp)
    print(f"crash_test: seed {args.seed}, {args.rounds} rounds, {args.partitions} partitions, "
          f"smp {args.smp}, dir {work}", flush=True)
    sent = {p: [] for p in range(args.partitions)}
    acked = {p: [] for p in range(args.partitions)}
    seqs = {p: 0 for p in range(args.partitions)}
    previous = {p: None for p in range(args.partitions)}
    started = time.monotonic()
    ok = False
    try:
        broker.start()
        for rnd in range(args.rounds + 1):
            last = rnd == args.rounds
            stop = threading.Event()
            producers = [
                PartitionProducer(broker.port, p, seqs[p], random.Random(rng.random()), args.inflight, stop, rnd)
                for p in range(args.partitions)
            ]
            for t in producers:
                t.start()
            run_for = rng.uniform(0.3, 2.0)
            time.sleep(run_for)
            if last:
                stop.set()
                for t in producers:
                    t.join(30)
                code = broker.terminate()
                if code != 0:
                    raise AssertionError(f"SIGTERM: broker exited with {code}")
                how = "SIGTERM"
            else:
                broker.kill()
                stop.set()
                for t in producers:
                    t.join(30)
                how = "SIGKILL"
            n_sent = n_acked = 0
            for t in producers:
                if t.is_alive():
                    raise AssertionError(f"producer of partition {t.partition} is stuck")
                if t.errors:
                    raise AssertionError(f"partition {t.partition}: produce errors {sorted(set(t.errors))}")
                sent[t.partition] += t.sent
                acked[t.partition] += t.acked
                seqs[t.partition] = t.seq
                n_sent += sum(len(b) for b in t.sent)
                n_acked += sum(len(v) for _, v in t.acked)
            broker.start()
            present = 0
            for p in range(args.partitions):
                records, _batches, hw = fetch_all(broker.port, TOPIC, p)
                previous[p] = check_partition(p, records, _batches, sent[p], acked[p], previous[p])
                present += len(records)
            print(f"round {rnd}: {how} after {run_for:.2f} s; sent {n_sent}, acked {n_acked} this round; "
                  f"{present} records present in all, every acked one at its offset", flush=True)
        code = broker.terminate()
        if code != 0:
            raise AssertionError(f"final SIGTERM: broker exited with {code}")
        total_acked = sum(len(v) for p in acked for _, v in acked[p])
        if total_acked == 0:
            raise AssertionError("nothing was acknowledged: the test proved nothing")
        print(f"crash_test: PASS ({total_acked} acknowledged records survived {args.rounds} SIGKILLs; "
              f"{time.monotonic() - started:.1f} s)", flush=True)
        ok = True
    except AssertionError as e:
        print(f"crash_test: FAIL: {e}", flush=True)
    finally:
        if broker.proc and broker.proc.poll() is None:
            broker.proc.kill()
            broker.proc.wait()
        if not ok and os.path.exists(broker.log_path):
            with open(broker.log_path, "rb") as f:
                tail = f.read()[-6000:]
            print("---- broker log (tail) ----\n" + tail.decode(errors="replace"), flush=True)
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            print(f"crash_test: kept {work} for inspection", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
