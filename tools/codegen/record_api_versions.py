#!/usr/bin/env python3
"""Records the API version ranges a running Kafka broker advertises.

usage: record_api_versions.py HOST:PORT > tools/codegen/kafka-4.4-api-versions.tsv

Sends ApiVersions v3 and prints "api_key min max" per advertised API. Use it
against the reference broker (tests/kafka_ref/kafka-ref start DIR).
"""

import socket
import struct
import sys


def uvarint(buf, pos):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    client_id = b"fjord-recorder"
    # Request header v2: key, version, correlation id, client id (int16 string), no tags.
    header = struct.pack(">hhih", 18, 3, 1, len(client_id)) + client_id + b"\x00"
    software = b"fjord"
    body = bytes([len(software) + 1]) + software + bytes([len(b"0.1") + 1]) + b"0.1" + b"\x00"
    frame = header + body
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    pos = 4  # correlation id; ApiVersions responses use header v0
    error = struct.unpack(">h", resp[pos:pos + 2])[0]
    pos += 2
    if error != 0:
        sys.exit(f"ApiVersions error {error}")
    n, pos = uvarint(resp, pos)
    print("# ApiVersions as answered by Apache Kafka 4.4 (single KRaft broker, default")
    print("# config): api_key min_version max_version. Recorded by tools/codegen/record_api_versions.py.")
    for _ in range(n - 1):
        key, lo, hi = struct.unpack(">hhh", resp[pos:pos + 6])
        pos += 6
        tags, pos = uvarint(resp, pos)
        for _ in range(tags):
            _, pos = uvarint(resp, pos)
            size, pos = uvarint(resp, pos)
            pos += size
        print(f"{key}\t{lo}\t{hi}")


if __name__ == "__main__":
    main()
