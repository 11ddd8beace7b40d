"""Kraken v2 book helpers: the wire number format, the CRC32 checksum and the truncating diff.

Facts: prices and quantities are JSON numbers "containing full precision" (trailing zeros
kept) [KR-INTRO §Websockets v2]; the checksum is CRC32 (unsigned) of the top 10 asks (low→high)
then the top 10 bids (high→low), each level as price then qty with ``.`` removed and leading
zeros stripped, strings in the pair's full precision [KR-CKS2 §Algorithm; KR-FIX-CKS §Checksum
calculation]; after each update a client truncates its book to the subscribed depth, and no
``qty: 0`` is sent for levels that only fall out of scope [KR-CKS2 §Maintaining the book].
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from simulator.market import Level, book_diff

__all__ = ["KrakenLevel", "kraken_checksum", "kraken_diff", "levels_json", "ws_levels"]

KrakenLevel = tuple[str, str]
"""``(price, qty)`` as the JSON number texts sent on the wire (``"65000.1"``,
``"0.00100000"``)."""


def _strip(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken_checksum(bids: Sequence[KrakenLevel], asks: Sequence[KrakenLevel]) -> int:
    """CRC32 (unsigned 32-bit) of a book's top 10 levels per [KR-CKS2 §Algorithm].

    Args:
        bids: best (highest) first, ``(price_text, qty_text)`` in full precision.
        asks: best (lowest) first, likewise.

    Example step: price ``45285.2`` → ``452852``, qty ``0.00100000`` → ``100000``, level
    string ``452852100000``.
    """
    text = "".join(_strip(p) + _strip(q) for p, q in asks[:10])
    text += "".join(_strip(p) + _strip(q) for p, q in bids[:10])
    return zlib.crc32(text.encode("ascii"))


def ws_levels(levels: Sequence[Level], price_decimals: int) -> list[KrakenLevel]:
    """The model's levels in the WebSocket precision: prices cut to ``price_decimals`` (the
    REST strings carry extra zero decimals, e.g. ``"65000.10000"`` → ``"65000.1"``), quantities
    as they are (8 decimals, trailing zeros kept)."""
    out: list[KrakenLevel] = []
    for price, qty, _, _ in levels:
        dot = price.find(".")
        if dot >= 0:
            price = price[: dot + 1 + price_decimals] if price_decimals else price[:dot]
        out.append((price, qty))
    return out


def kraken_diff(
    prev: list[KrakenLevel], cur: list[KrakenLevel], depth: int, bids: bool
) -> list[KrakenLevel]:
    """The changes turning ``prev`` into ``cur`` for a client that truncates to ``depth``:
    :func:`book_diff` minus the deletions of levels that merely fell below ``cur``'s worst
    level while ``cur`` is full (Kraken sends none for those [KR-CKS2])."""
    zero = "0." + "0" * len(cur[0][1].partition(".")[2]) if cur else "0"
    prev4 = [(p, q, 0, 0) for p, q in prev]
    cur4 = [(p, q, 0, 0) for p, q in cur]
    changes = book_diff(prev4, cur4, zero=zero, descending=bids)
    if len(cur) < depth or not cur:
        return changes
    worst = float(cur[-1][0])
    gone = {p for p, _ in prev} - {p for p, _ in cur}
    return [
        (p, q)
        for p, q in changes
        if p not in gone or (float(p) > worst if bids else float(p) < worst)
    ]


def levels_json(levels: Sequence[KrakenLevel]) -> str:
    """``[{"price":65000.1,"qty":0.00100000},…]`` with the numbers written verbatim."""
    return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels) + "]"
