"""The exporter's `location` (issue 16): validated at load, a `location` label on every series
of /metrics (fast renderer and its generate_latest fallback alike), shown in /status, and
without it the output is exactly what it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import SummaryMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import ConfigError, load_config, parse_config
from exporter.exposition import LabelledCollector, TextRenderer
from exporter.metrics import ExporterMetrics
from exporter.runtime import ExporterRuntime
from tests.exporter.test_exposition import populated, samples

CONFIG = """
{location}
exchanges:
  - name: binance
    profile: binance
    base_url: http://127.0.0.1:9/binance
"""


def _write(tmp_path: Path, location_line: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(CONFIG.format(location=location_line), encoding="utf-8")
    return path


def _series_labels(text: bytes) -> list[dict[str, str]]:
    return [
        dict(sample.labels)
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    ]


@pytest.mark.parametrize("value", ["eu-west", "ap-northeast-1", "fra1.hetzner", "dc:2", "A_1"])
def test_valid_locations_load(tmp_path: Path, value: str) -> None:
    assert load_config(_write(tmp_path, f"location: {value}")).location == value


def test_location_is_optional_and_empty_means_none(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")).location is None
    assert load_config(_write(tmp_path, 'location: ""')).location is None


@pytest.mark.parametrize(
    "value",
    ["'eu west'", "x" * 65, "'eu/west'", "'zürich'", "'a\"b'"],
)
def test_bad_location_names_file_field_and_value(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"location: {value}")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: location: must be 1-64 characters of [A-Za-z0-9_.:-]")
    assert "(value: " in message


def test_non_string_location_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"<config>: location: "):
        parse_config({"location": 5, "exchanges": CONFIG_EXCHANGES})


CONFIG_EXCHANGES = [{"name": "binance", "profile": "binance", "base_url": "http://127.0.0.1:9/b"}]


def test_without_location_the_output_is_unchanged() -> None:
    m = populated()
    before = m.render()
    m.set_location(None)
    assert m.render() == before
    m.set_location("eu-west")
    assert m.render() != before
    m.set_location(None)
    assert m.render() == before
    assert m.location is None
    assert b"location=" not in before


def test_every_series_carries_the_location() -> None:
    m = populated()
    m.set_location("eu-west")
    assert m.location == "eu-west"
    fast = m.render()
    labels = _series_labels(fast)
    assert labels and all(series.get("location") == "eu-west" for series in labels)
    expected = samples(generate_latest(LabelledCollector(m.registry, {"location": "eu-west"})))
    assert samples(fast) == expected
    assert m._renderer.fallbacks == 0
    # Labels stay sorted by name, as generate_latest writes them; unlabelled series get braces.
    assert (
        b'exchange_api_requests_total{endpoint="time",exchange="ex0",location="eu-west",'
        b'result="ok"} 3.0\n'
    ) in fast
    assert b'exchange_exporter_connectivity_up{location="eu-west"} 1.0\n' in fast
    assert b'le="+Inf",location="eu-west"}' in fast


def test_a_changed_location_replaces_the_cached_labels() -> None:
    m = populated()
    m.set_location("eu-west")
    m.render()
    m.set_location("us-east")
    text = m.render()
    assert b"eu-west" not in text
    assert all(series["location"] == "us-east" for series in _series_labels(text))


def test_fallback_rendering_carries_the_location_too() -> None:
    registry = CollectorRegistry()

    class Odd:
        def collect(self) -> Iterator[SummaryMetricFamily]:  # a summary: not on the fast path
            yield SummaryMetricFamily("odd", "o", count_value=1, sum_value=2)

    odd = Odd()
    registry.register(odd)
    gauge = Gauge("g", "g", ["location"], registry=registry)
    gauge.labels("own").set(1)
    renderer = TextRenderer([odd, gauge], registry, const_labels={"location": "eu-west"})
    text = renderer.render()
    assert renderer.fallbacks == 1
    by_name = {
        sample.name: sample.labels
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }
    assert by_name["odd_count"] == {"location": "eu-west"}
    assert by_name["g"] == {"location": "own"}  # a metric's own label wins
    renderer.set_const_labels({})
    assert renderer.render() == generate_latest(registry)


def test_fast_path_keeps_a_metrics_own_location_label() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("g", "g", ["location", "x"], registry=registry)
    gauge.labels("own", "1").set(2)
    text = TextRenderer([gauge], registry, const_labels={"location": "eu-west"}).render()
    assert b'g{location="own",x="1"} 2.0\n' in text


def test_status_and_reload_show_the_location(tmp_path: Path) -> None:
    path = _write(tmp_path, "location: eu-west")
    metrics = ExporterMetrics()
    runtime = ExporterRuntime(path, load_config(path), metrics)
    status = runtime.status()
    assert status["location"] == "eu-west"
    assert list(status)[:3] == ["version", "config_file", "location"]
    assert b'location="eu-west"' in metrics.render()
    path.write_text(CONFIG.format(location=""), encoding="utf-8")
    assert runtime.reload()["status"] == "ok"
    assert runtime.status()["location"] is None
    assert b"location=" not in metrics.render()
