"""Order-book side differences: the level changes that turn one book side into another
(what an exchange's diff stream sends between two snapshots). Re-exported by
:mod:`simulator.market`."""

from __future__ import annotations

__all__ = ["book_diff"]

Level = tuple[str, str, int, int]
"""One book level ``(price_str, qty_str, order_count, age_s)`` (as
:data:`simulator.market.Level`)."""


def book_diff(
    prev: list[Level],
    cur: list[Level],
    *,
    zero: str | None = None,
    descending: bool | None = None,
) -> list[tuple[str, str]]:
    """The level changes ``(price, qty)`` that turn one book side ``prev`` into ``cur``.

    Both lists are one side, best first. Levels new or changed in ``cur`` carry their new
    quantity; levels of ``prev`` missing from ``cur`` carry a zero quantity ``zero`` (default:
    inferred from the quantities given — ``"0.00000000"`` when every quantity has the same
    number of decimals, as Binance prints them, else ``"0"`` as Bybit/OKX do). Changes are
    ordered best first (``descending`` prices for bids; default: inferred from the lists,
    ascending when they cannot tell). Applying the result to ``prev`` (qty 0 removes) and
    truncating to ``len(cur)`` yields exactly ``cur``'s prices and quantities.
    """
    before = {lvl[0]: lvl[1] for lvl in prev}
    changes: list[tuple[str, str]] = [
        (lvl[0], lvl[1]) for lvl in cur if before.get(lvl[0]) != lvl[1]
    ]
    if len(before) != len(cur) or changes:
        now = {lvl[0] for lvl in cur}
        removed = [price for price in before if price not in now]
        if removed:
            if zero is None:
                zero = _infer_zero(prev, cur)
            changes.extend((price, zero) for price in removed)
    if len(changes) > 1:
        if descending is None:
            descending = _infer_descending(prev, cur)
        changes.sort(key=lambda change: float(change[0]), reverse=descending)
    return changes


def _infer_zero(prev: list[Level], cur: list[Level]) -> str:
    decimals = {len(q.partition(".")[2]) for _, q, *_ in (*prev, *cur)}
    if len(decimals) == 1 and (d := decimals.pop()) > 0:
        return "0." + "0" * d
    return "0"


def _infer_descending(prev: list[Level], cur: list[Level]) -> bool:
    for side in (cur, prev):
        if len(side) >= 2:
            return float(side[0][0]) > float(side[-1][0])
    return False
