"""exchange_common: the helpers the exporter and the receiver share."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from exchange_common.durations import format_duration, format_duration_compact, split_seconds
from exchange_common.retry_after import parse_retry_after
from exchange_common.timestamps import iso_utc, utc_now_iso
from exporter.profiles.base import parse_retry_after as exporter_retry_after
from receiver.notifiers.base import parse_retry_after_header

NOW = datetime(2026, 11, 21, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_delay_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_http_date_and_non_finite() -> None:
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    earlier = format_datetime(NOW - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=NOW) == 30.0
    assert parse_retry_after(earlier, now=NOW) == 0.0
    assert parse_retry_after(later, http_date=False) is None
    assert parse_retry_after("inf") is None and parse_retry_after("nan") is None


def test_both_components_use_the_one_parser() -> None:
    # The receiver's name is the shared function; the exporter reads the header mapping and
    # keeps its stricter reading (delay-seconds only, negatives unusable).
    assert parse_retry_after_header is parse_retry_after
    assert exporter_retry_after({"retry-after": "42"}) == 42.0
    assert exporter_retry_after({"retry-after": "-1"}) is None
    assert exporter_retry_after({"retry-after": format_datetime(NOW, usegmt=True)}) is None
    assert exporter_retry_after({}) is None


def test_durations_share_one_split() -> None:
    assert split_seconds(90061) == (1, 1, 1, 1)
    assert split_seconds(-5) == (0, 0, 0, 0)
    assert format_duration(252) == "4 min 12 s"
    assert format_duration(0.4) == "under 1 s" and format_duration(math.nan) == "under 1 s"
    assert format_duration(math.inf) == "unknown"
    assert format_duration(90000) == "1 d 1 h"
    assert format_duration_compact(3725) == "1h 2m 5s"
    assert format_duration_compact(0) == "0s"


def test_timestamps() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1.2345) == "1970-01-01T00:00:01.234Z"
    now = utc_now_iso()
    assert now.endswith("Z") and len(now) == len("1970-01-01T00:00:00.000Z")
