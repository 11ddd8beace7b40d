"""The notifier interface and the one ``{type: class}`` registry."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

import receiver.notifiers.metrics as send_metrics
from receiver.metrics import ReceiverMetrics
from receiver.notifiers.base import Notification, Notifier
from receiver.notifiers.jsonl import JsonlNotifier
from receiver.notifiers.metrics import NotifierMetrics
from receiver.notifiers.options import NotifierConfig, NotifierOptions
from receiver.notifiers.webhook import WebhookNotifier
from receiver.routing import NOTIFIERS
from tests.receiver.notifiers.test_render import notification


def test_every_registered_type_owns_its_configuration() -> None:
    for type_name, cls in NOTIFIERS.items():
        assert cls.channel == type_name
        assert issubclass(cls.options, NotifierOptions) and cls.options is not NotifierOptions
        assert cls.from_config.__func__ is not Notifier.from_config.__func__  # type: ignore[attr-defined]
        assert not inspect.isabstract(cls)
        module = cls.__module__.rsplit(".", 1)[-1]
        assert cls.options.__module__ == cls.__module__, module


def test_optional_capabilities_have_defaults() -> None:
    class Minimal(Notifier):
        channel = "minimal"

        async def _send(self, notification: Notification) -> None:
            return None

    n = notification()
    minimal = Minimal()
    assert minimal.idempotency_key(n) is None
    assert asyncio.run(minimal.delivered_before(n)) is False
    assert minimal.min_send_interval == 0.0
    with pytest.raises(NotImplementedError):
        Minimal.from_config(NotifierConfig("m", "minimal", NotifierOptions(type="m")), None)  # type: ignore[arg-type]


def test_idempotency_keys() -> None:
    n = notification()

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            hook = WebhookNotifier(SecretStr("http://hook.test/"), client, name="h")
            assert hook.idempotency_key(n) == n.delivery_key

    asyncio.run(go())


def test_jsonl_delivered_before_through_the_interface(tmp_path: Path) -> None:
    notifier: Notifier = JsonlNotifier(tmp_path / "n.jsonl", name="log")
    n = notification()

    async def go() -> tuple[bool, bool]:
        before = await notifier.delivered_before(n)
        await notifier.send(n)
        return before, await notifier.delivered_before(n)

    assert asyncio.run(go()) == (False, True)


def test_send_metrics_live_in_one_place_with_one_label_order() -> None:
    registry = CollectorRegistry()
    metrics = NotifierMetrics(registry)
    for family in (metrics.requests, metrics.duration, metrics.deliveries):
        assert family._labelnames[:2] == send_metrics.LABELS
    receiver_metrics = ReceiverMetrics()
    assert receiver_metrics.deliveries is receiver_metrics.notifiers.deliveries
    receiver_metrics.notifiers.delivery("jsonl", "log", "delivered")
    labels = {"channel": "jsonl", "notifier": "log", "result": "delivered"}
    value = receiver_metrics.registry.get_sample_value("alert_receiver_deliveries_total", labels)
    assert value == 1


def test_metrics_module_does_not_import_the_notifiers() -> None:
    import ast

    tree = ast.parse(Path(send_metrics.__file__).read_text())
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    ]
    assert not [m for m in imported if m.startswith("receiver")]
