"""Fast Prometheus text exposition (format 0.0.4) of the exporter's registry.

``prometheus_client.generate_latest`` builds a ``Sample`` object, a label dict and an escaped
label string for every line on every scrape: with 1,000 probed endpoints (~34,000 lines) that
took ~400 ms of CPU, held the GIL against the probe loop and showed up as schedule lag (issue 7,
``docs/benchmarks.md``). This renderer writes the same series straight from the metric objects,
caching each child's escaped label string, so a scrape costs a few microseconds per line.

It reads ``prometheus_client``'s metric objects (``_metrics``, ``_value``, ``_buckets``,
``_sum``, ``_upper_bounds`` and the values' ``_value`` float; stable since 0.12, the version range
is pinned in ``pyproject.toml``). A test renders a populated registry both ways and requires the
same samples; anything the renderer does not know (another collector type, a changed internal)
falls back to ``generate_latest`` for the whole registry, so a library upgrade can make scrapes
slower but never wrong.

Differences from ``generate_latest``, on purpose: no ``_created`` series (nothing here queries
them; they were a quarter of the lines), and floats are
written with Python's ``repr`` (``1e-05``, ``0.25``), which Prometheus parses alike.

Constant labels (the exporter's ``location``, issue 16) are added to every series at render
time, by both paths: the fast one writes them into each cached label string, the fallback
renders the registry through :class:`LabelledCollector`. A metric's own label of the same name
wins. Without constant labels both paths write exactly what they wrote before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

_CACHE_LIMIT = 200_000


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


class _UnsupportedError(Exception):
    pass


class LabelledCollector:
    """A collector that yields another collector's families with constant labels added to
    every sample (a sample's own label of the same name is kept).

    Args:
        collector: anything with ``collect()`` (a :class:`CollectorRegistry`).
        labels: ``{name: value}`` to add, e.g. ``{"location": "eu-west"}``.
    """

    def __init__(self, collector: Any, labels: Mapping[str, str]) -> None:
        self._collector = collector
        self._labels = dict(labels)

    def collect(self) -> Iterator[Metric]:
        """The wrapped collector's families, each sample labelled."""
        for family in self._collector.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [
                sample._replace(labels={**self._labels, **sample.labels})
                for sample in family.samples
            ]
            yield labelled


class TextRenderer:
    """Renders a fixed list of metrics; keeps escaped label strings between scrapes.

    Args:
        metrics: the metric objects in output order (``Counter``, ``Gauge``, ``Histogram``
            with or without labels); other collectors are rendered from their ``collect()``.
        registry: the registry holding them, for the ``generate_latest`` fallback.
        const_labels: ``{name: value}`` added to every series (see :meth:`set_const_labels`).
    """

    def __init__(
        self,
        metrics: Iterable[Any],
        registry: CollectorRegistry,
        const_labels: Mapping[str, str] | None = None,
    ) -> None:
        self._metrics = list(metrics)
        self._registry = registry
        self._labels: dict[tuple[str, ...], str] = {}
        self._lines: dict[tuple[str, ...], str] = {}
        self._lines_list: dict[tuple[str, ...], list[str]] = {}
        self._const: tuple[tuple[str, str], ...] = ()
        self.fallbacks = 0
        """How many scrapes fell back to ``generate_latest`` (0 unless internals changed)."""
        self.set_const_labels(const_labels or {})

    @property
    def const_labels(self) -> dict[str, str]:
        """The labels added to every series (empty for none)."""
        return dict(self._const)

    def set_const_labels(self, labels: Mapping[str, str]) -> None:
        """Add ``labels`` (``{name: value}``, valid Prometheus label names) to every series
        from the next render on, replacing the previous ones; ``{}`` removes them.
        Called where the config is applied (start-up, reload); a scrape rendering at that
        moment may mix old and new labels once, never fail."""
        const = tuple(sorted(labels.items()))
        if const != self._const:
            self._const = const
            self._labels.clear()
            self._lines.clear()
            self._lines_list.clear()

    def render(self) -> bytes:
        """The exposition text of every metric, UTF-8 encoded."""
        try:
            parts: list[str] = []
            for metric in self._metrics:
                self._render(metric, parts)
            return "".join(parts).encode("utf-8")
        except (_UnsupportedError, AttributeError, TypeError):
            self.fallbacks += 1
            if self._const:
                return generate_latest(LabelledCollector(self._registry, dict(self._const)))
            return generate_latest(self._registry)

    def _label_text(self, names: tuple[str, ...], values: tuple[str, ...]) -> str:
        key = names + values
        text = self._labels.get(key)
        if text is None:
            if len(self._labels) > _CACHE_LIMIT:
                self._labels.clear()
                self._lines.clear()
                self._lines_list.clear()
            pairs = list(zip(names, values, strict=True))
            pairs += [(name, value) for name, value in self._const if name not in names]
            pairs.sort()  # as generate_latest: by name
            text = ",".join(f'{name}="{_escape_label(value)}"' for name, value in pairs)
            self._labels[key] = text
        return text

    def _children(self, metric: Any) -> list[tuple[tuple[str, ...], Any]]:
        if not metric._labelnames:
            return [((), metric)]
        with metric._lock:
            return list(metric._metrics.items())

    def _render(self, metric: Any, parts: list[str]) -> None:
        if isinstance(metric, Counter):
            kind, suffix = "counter", "_total"
        elif isinstance(metric, Gauge):
            kind, suffix = "gauge", ""
        elif isinstance(metric, Histogram):
            kind, suffix = "histogram", ""
        else:
            self._render_collected(metric, parts)
            return
        name = metric._name
        names = tuple(metric._labelnames)
        out_name = name + suffix
        parts.append(f"# HELP {out_name} {_escape_help(metric._documentation)}\n")
        parts.append(f"# TYPE {out_name} {kind}\n")
        append = parts.append
        if kind == "histogram":
            for values, child in self._children(metric):
                self._render_histogram(name, names, values, child, parts)
            return
        lines = self._lines
        for values, child in self._children(metric):
            key = (out_name, *values)
            head = lines.get(key)
            if head is None:
                labels = self._label_text(names, values)
                head = lines[key] = f"{out_name}{{{labels}}} " if labels else f"{out_name} "
            value = child._value._value  # a float attribute: reading it is atomic
            append(f"{head}{_number(value)}\n")

    def _render_histogram(
        self,
        name: str,
        names: tuple[str, ...],
        values: tuple[str, ...],
        child: Any,
        parts: list[str],
    ) -> None:
        key = (name, *values)
        heads = self._lines_list.get(key)
        if heads is None:
            labels = self._label_text(names, values)
            braces = f"{{{labels}}}" if labels else ""
            heads = [
                f"{name}_bucket{{{self._label_text((*names, 'le'), (*values, _number(bound)))}}} "
                for bound in child._upper_bounds
            ]
            heads += [f"{name}_count{braces} ", f"{name}_sum{braces} "]
            self._lines_list[key] = heads
        append = parts.append
        cumulative = 0.0
        for head, bucket in zip(heads, child._buckets):  # noqa: B905 (heads has 2 more)
            cumulative += bucket._value
            append(f"{head}{cumulative!r}\n")
        append(f"{heads[-2]}{cumulative!r}\n")
        append(f"{heads[-1]}{_number(child._sum._value)}\n")

    def _render_collected(self, collector: Any, parts: list[str]) -> None:
        for family in collector.collect():
            if family.type not in ("gauge", "info", "counter"):
                raise _UnsupportedError(family.type)
            kind = "gauge" if family.type == "info" else family.type
            out_name = family.name + ("_info" if family.type == "info" else "")
            if family.type == "counter":
                out_name = family.name + "_total"
            parts.append(f"# HELP {out_name} {_escape_help(family.documentation)}\n")
            parts.append(f"# TYPE {out_name} {kind}\n")
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                names = tuple(sample.labels)
                labels = self._label_text(names, tuple(sample.labels[n] for n in names))
                braces = f"{{{labels}}}" if labels else ""
                parts.append(f"{sample.name}{braces} {_number(sample.value)}\n")
