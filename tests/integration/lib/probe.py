#!/usr/bin/env python3
"""Readiness probe: exits 0 when HOST:PORT accepts TCP and answers an ApiVersions
request (v0; a reply with error UNSUPPORTED_VERSION also counts as an answer).
Standard library only. Usage: probe.py HOST:PORT [TIMEOUT_SECONDS]"""
import socket
import struct
import sys


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def probe(host, port, timeout):
    client_id = b"fjord-it-probe"
    body = struct.pack(">hhih", 18, 0, 0x7E57, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", recv_exact(s, 4))
        data = recv_exact(s, size)
    corr, err = struct.unpack(">ih", data[:6])
    return corr == 0x7E57 and err in (0, 35)


if __name__ == "__main__":
    host, _, port = sys.argv[1].rpartition(":")
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    try:
        sys.exit(0 if probe(host, int(port), timeout) else 1)
    except (OSError, EOFError, struct.error):
        sys.exit(1)
