#!/usr/bin/env python3
"""Writes docs/test-vectors.json: the published vectors for Sluice's partitioning and
batch checksums (docs/partitioning.md).

Everything here is written out by hand from the rules, with no protobuf library and no
Sluice code: murmur2 as Kafka defines it, CRC32C bit by bit, and the protobuf wire format
of `sluice.v1.Records` field by field. The Swift tests (SluiceClientTests) and the Python
interop tests (tests/interop/test_produce_subscribe.py) check their own implementations
against the file, so three independent implementations agree.

    python3 scripts/make-test-vectors.py            # rewrite docs/test-vectors.json
    python3 scripts/make-test-vectors.py --check    # exit 1 if the file differs
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "test-vectors.json"


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed int32."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = data[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition(key: bytes, count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % count


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), reflected polynomial 0x82F63B78, bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(value: int) -> bytes:
    assert value >= 0
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63) if value < 0 else value << 1


def field(number: int, wire_type: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire_type) + payload


def length_delimited(number: int, payload: bytes) -> bytes:
    return field(number, 2, varint(len(payload)) + payload)


def encode_record(record: dict) -> bytes:
    """sluice.v1.Record: proto3, fields in number order, defaults omitted; `key` is
    `optional`, so a present empty key is written and an absent one is not."""
    out = b""
    if record.get("timestamp_delta_ms", 0):
        out += field(1, 0, varint(zigzag(record["timestamp_delta_ms"])))
    if record.get("key") is not None:
        out += length_delimited(2, record["key"])
    if record.get("value", b""):
        out += length_delimited(3, record["value"])
    for key, value in record.get("headers", []):
        header = b""
        if key:
            header += length_delimited(1, key.encode())
        if value:
            header += length_delimited(2, value)
        out += length_delimited(4, header)
    return out


def encode_records(records: list[dict]) -> bytes:
    return b"".join(length_delimited(1, encode_record(r)) for r in records)


KEYS: list[tuple[str, bytes]] = [
    ("empty key (hashed like any other; not the same as no key)", b""),
    ("ASCII, from Kafka's UtilsTest", b"21"),
    ("ASCII, from Kafka's UtilsTest", b"foobar"),
    ("ASCII, from Kafka's UtilsTest", b"abc"),
    ("ASCII, from Kafka's UtilsTest", b"a-little-bit-long-string"),
    ("ASCII, from Kafka's UtilsTest", b"a-little-bit-longer-string"),
    ("ASCII, from Kafka's UtilsTest", b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
    ("ASCII, one byte", b"k"),
    ("ASCII", b"user-42"),
    ("ASCII", b"order:2026-11-25:000017"),
    ("UTF-8 (umlaut and sharp s)", "Größe".encode()),
    ("UTF-8 (CJK)", "日本語".encode()),
    ("UTF-8 (emoji, 4-byte sequence)", "🚀".encode()),
    ("binary, high bytes", bytes([0x00, 0xFF, 0x80, 0x7F])),
    ("binary, 7 bytes", bytes([0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01, 0x02])),
    ("binary, one zero byte", bytes([0x00])),
]

PARTITION_COUNTS = [1, 2, 3, 7, 12, 100]

BATCHES: list[tuple[str, list[dict]]] = [
    ("one keyed record", [{"key": b"k1", "value": b"hello"}]),
    ("one record without key or value (an empty Record message)", [{}]),
    (
        "three records: no key, empty key, headers; deltas 0, 7, -5 (zigzag)",
        [
            {"value": b"first"},
            {"timestamp_delta_ms": 7, "key": b"", "value": b"second"},
            {
                "timestamp_delta_ms": -5,
                "key": "Größe".encode(),
                "value": bytes([0x00, 0xFF, 0x10]),
                "headers": [("trace-id", b"abc123"), ("empty", b""), ("trace-id", b"\x01")],
            },
        ],
    ),
    (
        "a 200-byte value (two-byte length varints)",
        [{"timestamp_delta_ms": 300, "key": b"user-42", "value": bytes(range(200))}],
    ),
]


def record_json(record: dict) -> dict:
    out: dict = {"timestamp_delta_ms": record.get("timestamp_delta_ms", 0)}
    out["key_hex"] = None if record.get("key") is None else record["key"].hex()
    out["value_hex"] = record.get("value", b"").hex()
    out["headers"] = [{"key": k, "value_hex": v.hex()} for k, v in record.get("headers", [])]
    return out


def build() -> dict:
    keys = []
    for note, key in KEYS:
        entry: dict = {"note": note, "key_hex": key.hex()}
        try:
            entry["key_utf8"] = key.decode("utf-8")
        except UnicodeDecodeError:
            pass
        hash_ = murmur2(key)
        entry["murmur2"] = hash_
        entry["murmur2_hex"] = f"{hash_ & 0xFFFFFFFF:08x}"
        entry["partitions"] = {str(n): partition(key, n) for n in PARTITION_COUNTS}
        keys.append(entry)
    batches = []
    for note, records in BATCHES:
        encoded = encode_records(records)
        batches.append({
            "note": note,
            "records": [record_json(r) for r in records],
            "records_bytes_hex": encoded.hex(),
            "records_crc32c": crc32c(encoded),
            "records_crc32c_hex": f"{crc32c(encoded):08x}",
        })
    return {
        "about": "Sluice test vectors; rules in docs/partitioning.md. Generated by scripts/make-test-vectors.py.",
        "murmur2": {"seed": "0x9747b28c", "m": "0x5bd1e995", "r": 24,
                    "partition": "(murmur2(key) & 0x7fffffff) % partition_count"},
        "crc32c": {
            "polynomial": "0x1edc6f41 (reflected 0x82f63b78), init 0xffffffff, final xor 0xffffffff",
            "check": {"input_ascii": "123456789", "crc32c": crc32c(b"123456789"),
                      "crc32c_hex": f"{crc32c(b'123456789'):08x}"},
        },
        "keys": keys,
        "batches": batches,
    }


def main() -> int:
    text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv[1:]:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run scripts/make-test-vectors.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    # Kafka's UtilsTest values: the implementation above must reproduce them.
    for data, expected in [(b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
                           (b"a-little-bit-longer-string", -1486304829),
                           (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971), (b"abc", 479470107)]:
        assert murmur2(data) == expected, (data, murmur2(data), expected)
    assert crc32c(b"123456789") == 0xE3069283
    sys.exit(main())
