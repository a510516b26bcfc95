#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target of tests/fuzz into OUT/<target>/:
small valid files in each format (so the fuzzer starts inside the parsers, not at
their first check) and the hostile inputs that once crashed, hung or
over-allocated (so a regression is found in the first second).
Usage: write_seed_corpus.py OUT"""
import gzip
import json
import os
import struct
import sys


def idx_pair(images: bytes, labels: bytes) -> bytes:
    """The fuzz_idx_reader layout: u16 LE length of the images file, images, labels."""
    return struct.pack("<H", len(images)) + images + labels


def idx_images(count, rows, cols, pixels=None):
    if pixels is None:
        pixels = bytes((i * 37 + 5) & 0xFF for i in range(count * rows * cols))
    return struct.pack(">IIII", 0x803, count, rows, cols) + pixels


def idx_labels(count, labels=None):
    if labels is None:
        labels = bytes(i % 10 for i in range(count))
    return struct.pack(">II", 0x801, count) + labels


def safetensors(header, data=b""):
    text = json.dumps(header, separators=(",", ":")).encode() if not isinstance(header, bytes) else header
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def seeds():
    yield "fuzz_idx_reader", "raw", idx_pair(idx_images(3, 2, 4), idx_labels(3))
    yield "fuzz_idx_reader", "gzip", idx_pair(gzip.compress(idx_images(3, 2, 4), mtime=0),
                                                gzip.compress(idx_labels(3), mtime=0))
    yield "fuzz_idx_reader", "mixed", idx_pair(idx_images(2, 3, 3), gzip.compress(idx_labels(2), mtime=0))
    # A 16-byte header promising 2 GiB (labels the same): once a 2.2 GiB allocation.
    yield "fuzz_idx_reader", "huge_header", idx_pair(idx_images(1 << 31, 1, 1, b""), idx_labels(1 << 31, b""))

    record = bytes([3]) + bytes(range(256)) * 12
    yield "fuzz_cifar10_reader", "two_records", record + bytes([9]) + bytes(3072)
    yield "fuzz_cifar10_reader", "bad_label", bytes([10]) + bytes(3072)

    yield "fuzz_gset_reader", "graph", b"# a comment\n5 6\n1 2 1\n1 3 -1\n2 3 2.5\n3 4 1\n4 5 1\n5 1 1\n"
    yield "fuzz_gset_reader", "crlf_tabs", b"3 2 \r\n1\t2\t1\r\n% x\r\n2 3 1\r\n"
    yield "fuzz_gset_reader", "spins", b"1,-1,+1,1,-1\n"
    # A 13-byte header promising 2^40 edges: once a 1 GiB reservation.
    yield "fuzz_gset_reader", "huge_header", b"2 1099511627776\n"
    yield "fuzz_gset_reader", "binary", b"\x1b]0;x\x07\x01\xff 7\n"

    yield "fuzz_ising_couplings", "couplings", b"3 2\n1 2 -1\nh 1 0.5\n2 3 1\nH 3 -2\n"
    # 20 bytes: once an 8 GiB field vector.
    yield "fuzz_ising_couplings", "huge_spins", b"1073741824 0\nh 1 1\n"

    weights = struct.pack("<6f", *[0.5, -1.0, 2.0, 0.0, 1e-3, 7.0])
    yield "fuzz_safetensors", "two_tensors", safetensors(
        {"b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]},
         "__metadata__": {"format": "pt", "epoch": "3"}}, weights)
    yield "fuzz_safetensors", "empty", safetensors({})
    # 60000 levels of nesting: once a stack overflow in nlohmann's dump.
    deep = 60000
    yield "fuzz_safetensors", "deep", safetensors(
        b'{"w":{"dtype":"F32","shape":' + b"[" * deep + b"]" * deep + b',"data_offsets":[0,0]}}')


def main():
    out = sys.argv[1]
    for target, name, data in seeds():
        os.makedirs(os.path.join(out, target), exist_ok=True)
        with open(os.path.join(out, target, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
