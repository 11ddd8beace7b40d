"""Body transformations for the body-level faults: ``bad_json`` (truncate), ``huge_body``
(a streamed, exactly sized, valid JSON order book) and ``slow_body`` (re-slicing for pacing).

Nothing here does I/O; the server writes what these generators yield, draining between parts,
so a 64 MiB body never sits in memory.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass

__all__ = ["BookFrame", "huge_book", "slices", "truncate_json"]

_LEVELS_PER_PART = 2048  # ~50–80 KiB per yielded part


def truncate_json(body: bytes) -> bytes:
    """Cut a JSON object/array body in half: every strict prefix of an object or array is
    invalid JSON. Returns at least one byte (``b"{}"`` → ``b"{"``)."""
    return body[: max(len(body) // 2, 1)] if len(body) > 1 else b"{"


@dataclass(frozen=True, slots=True)
class BookFrame:
    """An exchange's order-book envelope, split around its two level arrays.

    The body is ``head + side1 + middle + side2 + tail`` where each side is a comma-separated
    list of levels rendered with ``level % (whole, cents)``.

    Attributes:
        head: everything up to and including the ``[`` opening the first side.
        middle: from the ``]`` closing the first side to the ``[`` opening the second.
        tail: from the ``]`` closing the second side to the end.
        level: %-format of one level taking ``(whole_dollars, cents)``, e.g.
            ``'["%d.%02d","0.5"]'`` (other columns are baked in).
        bids_first: the first side holds bids (descending prices), else asks (ascending).
    """

    head: bytes
    middle: bytes
    tail: bytes
    level: str
    bids_first: bool = True


def huge_book(frame: BookFrame, size: int, bid_cents: int, ask_cents: int) -> Iterator[bytes]:
    """Yield a valid JSON order book of exactly ``size`` bytes in parts of ~64 KiB.

    Bids descend one cent per level from ``bid_cents``, asks ascend from ``ask_cents``; half
    the level budget goes to each side and the remainder (less than one level) is filled with
    spaces before the tail, which JSON allows. Levels are rendered lazily, one part at a time.

    Raises:
        ValueError: ``size`` is smaller than the frame itself.
    """
    fixed = len(frame.head) + len(frame.middle) + len(frame.tail)
    budget = size - fixed
    if budget < 0:
        raise ValueError(f"size {size} is smaller than the {fixed}-byte envelope")
    first, second = (bid_cents, ask_cents) if frame.bids_first else (ask_cents, bid_cents)
    step1, step2 = (-1, 1) if frame.bids_first else (1, -1)
    yield frame.head
    used1 = yield from _levels(frame.level, first, step1, budget // 2)
    yield frame.middle
    used2 = yield from _levels(frame.level, second, step2, budget - used1)
    yield b" " * (budget - used1 - used2) + frame.tail


def _levels(level: str, start: int, step: int, budget: int) -> Generator[bytes, None, int]:
    """Yield comma-separated levels from ``start`` cents moving ``step`` cents per level, in
    parts of :data:`_LEVELS_PER_PART`, stopping before ``budget`` bytes would be exceeded (or
    before the price would reach zero). Returns (via ``yield from``) the bytes produced."""
    used = 0
    cents = start
    chunk: list[str] = []
    emitted = False
    while cents > 1:
        item = level % divmod(cents, 100)
        size = len(item) + (1 if used else 0)  # every level but the very first has a comma
        if used + size > budget:
            break
        chunk.append(item)
        used += size
        cents += step
        if len(chunk) == _LEVELS_PER_PART:
            yield (("," if emitted else "") + ",".join(chunk)).encode()
            emitted = True
            chunk = []
    if chunk:
        yield (("," if emitted else "") + ",".join(chunk)).encode()
    return used


def slices(parts: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-cut ``parts`` into pieces of exactly ``size`` bytes (the last may be shorter)."""
    pending = b""
    for part in parts:
        data = pending + part if pending else part
        end = len(data) - len(data) % size
        for start in range(0, end, size):
            yield data[start : start + size]
        pending = data[end:]
    if pending:
        yield pending
