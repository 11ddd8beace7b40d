"""Order-book checksums as the exchanges document them (OKX signed CRC32, Kraken v2 unsigned CRC32).

Both take the local book's levels as the exchange's own ``(price, quantity)`` strings, best first
(bids high → low, asks low → high), exactly as :meth:`exporter.streams.book.LocalBook.top` gives
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from zlib import crc32

OKX_CHECKSUM_DEPTH = 25
"""Levels per side in the OKX checksum [OKX-MD §Checksum]."""

KRAKEN_CHECKSUM_DEPTH = 10
"""Levels per side in the Kraken v2 checksum [KR-CKS2 §Algorithm]."""


def okx_checksum_string(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> str:
    """The string OKX checksums: the first 25 bids and asks alternating per rank
    ``bid1px:bid1sz:ask1px:ask1sz:bid2px…``; where one side is shorter its missing entries are
    skipped and the longer side's remaining levels follow; strings used exactly as received
    [OKX-MD §Checksum]."""
    bids = bids[:OKX_CHECKSUM_DEPTH]
    asks = asks[:OKX_CHECKSUM_DEPTH]
    parts: list[str] = []
    for (bid_price, bid_qty), (ask_price, ask_qty) in zip(bids, asks, strict=False):
        parts += (bid_price, bid_qty, ask_price, ask_qty)
    shorter = min(len(bids), len(asks))
    for price, qty in bids[shorter:] if len(bids) > shorter else asks[shorter:]:
        parts += (price, qty)
    return ":".join(parts)


def okx_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """OKX's book checksum: CRC32 (IEEE) of :func:`okx_checksum_string` as a **signed** 32-bit
    int, e.g. bids ``[("3366.1","7"),("3366","6")]``, asks ``[("3366.8","9"),("3368","8")]`` →
    -1881014294 [OKX-MD §Checksum]."""
    value = crc32(okx_checksum_string(bids, asks).encode())
    return value - 0x100000000 if value & 0x80000000 else value


def kraken_checksum_string(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> str:
    """The string Kraken v2 checksums: the top 10 asks low → high, then the top 10 bids
    high → low, each level as price then quantity with ``.`` removed and leading zeros
    stripped, all concatenated (``45285.2``/``0.00100000`` → ``452852100000``) [KR-CKS2
    §Algorithm]. Strings must carry the pair's full precision (trailing zeros kept)."""
    return "".join(
        [
            text.replace(".", "").lstrip("0")
            for level in (*asks[:KRAKEN_CHECKSUM_DEPTH], *bids[:KRAKEN_CHECKSUM_DEPTH])
            for text in level
        ]
    )


def kraken_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """Kraken v2's book checksum: CRC32 of :func:`kraken_checksum_string`, **unsigned** 32-bit
    [KR-CKS2 §Algorithm]."""
    return crc32(kraken_checksum_string(bids, asks).encode())
