#!/usr/bin/env python3
"""Recording TCP proxy for the Kafka wire protocol (stdlib only).

Listens on a loopback port, forwards every connection to the upstream broker,
splits both directions into Kafka frames (4-byte big-endian size prefix) and
appends every request and response to OUTPUT, in the order seen:

    u8  kind         0 = request, 1 = response
    i16 api_key      (a response carries the api_key of its request)
    i16 api_version  (a response carries the api_version of its request)
    u32 length
    length bytes     frame payload without the size prefix
                     (request header + body / response header + body)

All integers are big-endian. Responses are matched to requests by
correlation id, per connection. Clients reach the proxy only if the broker
advertises the proxy's address (kafka-ref: KAFKA_REF_ADVERTISED_PORT).

Usage: record_proxy.py --listen PORT --upstream HOST:PORT --output FILE
Stops on SIGTERM/SIGINT.
"""

import argparse
import os
import signal
import socket
import struct
import sys
import threading

REQUEST, RESPONSE = 0, 1


class Recorder:
    def __init__(self, path):
        self._f = open(path, "ab")
        self._lock = threading.Lock()
        self.requests = 0
        self.responses = 0

    def write(self, kind, api_key, api_version, payload):
        rec = struct.pack(">BhhI", kind, api_key, api_version, len(payload)) + payload
        with self._lock:
            self._f.write(rec)
            self._f.flush()
            if kind == REQUEST:
                self.requests += 1
            else:
                self.responses += 1

    def close(self):
        with self._lock:
            self._f.close()


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(sock):
    """Returns (size_prefix, payload) or None on EOF."""
    head = recv_exact(sock, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    if size < 0:
        raise ValueError("negative frame size %d" % size)
    payload = recv_exact(sock, size)
    if payload is None:
        return None
    return head, payload


class Connection:
    def __init__(self, client, upstream_addr, recorder, verbose):
        self.client = client
        self.upstream = socket.create_connection(upstream_addr)
        self.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.recorder = recorder
        self.verbose = verbose
        self.pending = {}  # correlation id -> (api_key, api_version)
        self.lock = threading.Lock()

    def start(self):
        threading.Thread(target=self._pump, args=(True,), daemon=True).start()
        threading.Thread(target=self._pump, args=(False,), daemon=True).start()

    def _close(self):
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _pump(self, is_request):
        src, dst = (self.client, self.upstream) if is_request else (self.upstream, self.client)
        try:
            while True:
                frame = read_frame(src)
                if frame is None:
                    break
                head, payload = frame
                if is_request:
                    if len(payload) < 8:
                        raise ValueError("short request header")
                    api_key, api_version, corr = struct.unpack(">hhi", payload[:8])
                    with self.lock:
                        self.pending[corr] = (api_key, api_version)
                    self.recorder.write(REQUEST, api_key, api_version, payload)
                else:
                    if len(payload) < 4:
                        raise ValueError("short response header")
                    (corr,) = struct.unpack(">i", payload[:4])
                    with self.lock:
                        key_ver = self.pending.pop(corr, None)
                    if key_ver is None:
                        print("record_proxy: response with unknown correlation id %d" % corr,
                              file=sys.stderr)
                        key_ver = (-1, -1)
                    self.recorder.write(RESPONSE, key_ver[0], key_ver[1], payload)
                dst.sendall(head + payload)
        except (OSError, ValueError) as e:
            if self.verbose:
                print("record_proxy: connection closed: %s" % e, file=sys.stderr)
        finally:
            self._close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", type=int, required=True, help="loopback port to listen on")
    ap.add_argument("--upstream", required=True, help="broker HOST:PORT")
    ap.add_argument("--output", required=True, help="recording file (appended to)")
    ap.add_argument("--truncate", action="store_true", help="empty the output file first")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    host, _, port = args.upstream.rpartition(":")
    upstream_addr = (host, int(port))
    if args.truncate:
        open(args.output, "wb").close()
    recorder = Recorder(args.output)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.listen))
    srv.listen(64)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    print("record_proxy: 127.0.0.1:%d -> %s, recording to %s"
          % (args.listen, args.upstream, args.output), file=sys.stderr, flush=True)
    try:
        while True:
            client, _ = srv.accept()
            try:
                Connection(client, upstream_addr, recorder, args.verbose).start()
            except OSError as e:
                print("record_proxy: upstream connect failed: %s" % e, file=sys.stderr)
                client.close()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
        print("record_proxy: %d requests, %d responses recorded"
              % (recorder.requests, recorder.responses), file=sys.stderr)
        recorder.close()
        os._exit(0)


if __name__ == "__main__":
    main()
