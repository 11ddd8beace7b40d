"""The shared local order book: sorting, zero-quantity deletes, truncation, top-N, best."""

from __future__ import annotations

import random

import pytest

from exporter.streams.book import BookSide, LocalBook


def test_snapshot_sorts_each_side_best_first_and_keeps_exchange_strings() -> None:
    book = LocalBook()
    book.replace(
        bids=[("100.5", "1"), ("101.00", "2"), ("99", "3")],
        asks=[("103", "1"), ("102.10", "0.50000000"), ("104", "2")],
    )
    bids, asks = book.top(10)
    assert bids == [("101.00", "2"), ("100.5", "1"), ("99", "3")]
    assert asks == [("102.10", "0.50000000"), ("103", "1"), ("104", "2")]
    assert book.best() == (101.0, 102.1)


@pytest.mark.parametrize("zero", ["0", "0.0", "0.00000000", "0E-8", "-0", "0.", "00"])
def test_any_zero_spelling_deletes_a_level(zero: str) -> None:
    book = LocalBook()
    book.replace(bids=[("10", "1"), ("9", "1")], asks=[("11", "1")])
    book.apply(bids=[("10.0", zero)], asks=[])
    assert book.top(5)[0] == [("9", "1")]


def test_delete_of_an_absent_level_is_ignored_and_snapshot_skips_zeros() -> None:
    book = LocalBook()
    book.replace(bids=[("10", "0"), ("9", "1")], asks=[])
    book.apply(bids=[("8", "0")], asks=[("12", "0")])
    assert book.top(5) == ([("9", "1")], [])


def test_same_price_in_another_spelling_replaces_the_level_with_the_new_strings() -> None:
    book = LocalBook()
    book.replace(bids=[("100.0", "1")], asks=[])
    book.apply(bids=[("100.00", "2.5")], asks=[])
    assert book.top(5)[0] == [("100.00", "2.5")]
    assert len(book.bids) == 1


def test_levels_of_one_message_apply_in_order() -> None:
    book = LocalBook()
    book.replace(bids=[("10", "1")], asks=[])
    book.apply(bids=[("10", "0"), ("10", "3"), ("11", "2"), ("11", "0")], asks=[])
    assert book.top(5)[0] == [("10", "3")]


def test_truncate_to_max_depth_after_every_change() -> None:
    book = LocalBook(max_depth=2)
    book.replace(bids=[("1", "1"), ("2", "1"), ("3", "1")], asks=[("5", "1"), ("4", "1")])
    assert book.top(5) == ([("3", "1"), ("2", "1")], [("4", "1"), ("5", "1")])
    book.apply(bids=[("2.5", "1")], asks=[("3.5", "1")])
    assert book.top(5) == ([("3", "1"), ("2.5", "1")], [("3.5", "1"), ("4", "1")])
    assert len(book.bids) == 2 and len(book.asks) == 2


def test_top_n_is_a_slice_and_best_of_empty_sides_is_none() -> None:
    book = LocalBook()
    assert book.best() == (None, None)
    assert not book
    book.apply(bids=[(str(p), "1") for p in range(1, 50)], asks=[])
    assert [p for p, _ in book.top(3)[0]] == ["49", "48", "47"]
    assert book.best() == (49.0, None)
    book.clear()
    assert book.best() == (None, None)


def test_crossed_book_is_visible_through_best() -> None:
    book = LocalBook()
    book.replace(bids=[("100", "1")], asks=[("101", "1")])
    bid, ask = book.best()
    assert bid is not None and ask is not None and bid < ask
    book.apply(bids=[("101.5", "1")], asks=[])
    bid, ask = book.best()
    assert bid is not None and ask is not None and bid >= ask


def test_non_numeric_levels_raise_value_error() -> None:
    with pytest.raises(ValueError):
        LocalBook().apply(bids=[("abc", "1")], asks=[])
    with pytest.raises(ValueError, match="max_depth"):
        LocalBook(max_depth=0)


def test_random_changes_match_a_naive_model() -> None:
    rng = random.Random(13)
    side = BookSide(descending=True)
    model: dict[float, tuple[str, str]] = {}
    for _ in range(3000):
        price = f"{rng.randint(90, 110) + rng.choice([0, 0.5]):.2f}"
        qty = rng.choice(["0", "0.000", f"{rng.random():.4f}"])
        side.apply(price, qty)
        if float(qty) == 0:
            model.pop(float(price), None)
        else:
            model[float(price)] = (price, qty)
    expected = [model[key] for key in sorted(model, reverse=True)]
    assert side.top(1000) == expected
    assert side.best() == (max(model) if model else None)
