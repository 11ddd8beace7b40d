"""OKX and Kraken v2 book checksums against the documented vectors and algorithm steps."""

from __future__ import annotations

import zlib

from exporter.streams.checksums import (
    kraken_checksum,
    kraken_checksum_string,
    okx_checksum,
    okx_checksum_string,
)


def test_okx_vector_equal_sides() -> None:
    # [OKX-MD §Checksum]: "3366.1:7:3366.8:9:3366:6:3368:8" → -1881014294.
    bids = [("3366.1", "7"), ("3366", "6")]
    asks = [("3366.8", "9"), ("3368", "8")]
    assert okx_checksum_string(bids, asks) == "3366.1:7:3366.8:9:3366:6:3368:8"
    assert okx_checksum(bids, asks) == -1881014294


def test_okx_vector_shorter_bid_side_is_skipped() -> None:
    # [OKX-MD §Checksum]: "3366.1:7:3366.8:9:3368:8:3372:8" → 831078360.
    bids = [("3366.1", "7")]
    asks = [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
    assert okx_checksum_string(bids, asks) == "3366.1:7:3366.8:9:3368:8:3372:8"
    assert okx_checksum(bids, asks) == 831078360


def test_okx_uses_only_25_levels_per_side_and_strings_as_received() -> None:
    bids = [(f"{100 - i}.10", "1.000") for i in range(30)]
    asks = [(f"{200 + i}.10", "2.000") for i in range(30)]
    text = okx_checksum_string(bids, asks)
    assert text.count(":") == 25 * 4 - 1
    assert text.startswith("100.10:1.000:200.10:2.000:99.10")
    assert "75.10" not in text and "225.10" not in text


def test_okx_signed_conversion() -> None:
    cases: list[tuple[list[tuple[str, str]], list[tuple[str, str]]]] = [
        ([("1", "1")], []),
        ([], [("2", "3")]),
        ([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]),
    ]
    for bids, asks in cases:
        unsigned = zlib.crc32(okx_checksum_string(bids, asks).encode())
        signed = okx_checksum(bids, asks)
        assert -(2**31) <= signed < 2**31
        assert signed & 0xFFFFFFFF == unsigned


def test_kraken_example_step() -> None:
    # [KR-CKS2 §Algorithm]: price 45285.2 → 452852, qty 0.00100000 → 100000.
    assert kraken_checksum_string([], [("45285.2", "0.00100000")]) == "452852100000"
    assert kraken_checksum([], [("45285.2", "0.00100000")]) == zlib.crc32(b"452852100000")


def test_kraken_asks_low_to_high_then_bids_high_to_low_top_ten_unsigned() -> None:
    asks = [(f"0.{5660 + i}", "10.00000000") for i in range(12)]
    bids = [(f"0.{5659 - i}", "1.50000000") for i in range(12)]
    text = kraken_checksum_string(bids, asks)
    expected = "".join(f"{5660 + i}1000000000" for i in range(10)) + "".join(
        f"{5659 - i}150000000" for i in range(10)
    )
    assert text == expected
    value = kraken_checksum(bids, asks)
    assert value == zlib.crc32(expected.encode())
    assert 0 <= value < 2**32
