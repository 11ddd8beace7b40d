"""Pages never wait for the LLM (``receiver.updates``): a critical notification goes out with the
rules' diagnosis when the LLM is late, and the LLM's answer follows as an update; other routes
still wait for it. The LLM is a stand-in whose answer is released by an ``asyncio.Event``."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Diagnosis
from receiver.models import Alert, AlertmanagerWebhook
from receiver.notifiers.base import MessageIds, Notification, Notifier, SentMessage, UpdateKind
from receiver.notifiers.jsonl import JsonlNotifier
from receiver.store import DeliveryState, SQLiteStore
from receiver.worker import Worker
from tests.receiver.test_receiver_app import exchange_payload

LLM_TEXT = "Binance matching engine degraded (LLM)."


class _HungLLM:
    """``diagnose`` answers a firing alert with an LLM diagnosis once :attr:`release` is set
    (a resolved one at once with the rules, as the engine does)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def diagnose(self, alert: Alert) -> Diagnosis:
        if alert.status != "firing":
            return diagnose_with_rules(alert)
        self.calls += 1
        await self.release.wait()
        rules = diagnose_with_rules(alert)
        return rules.model_copy(update={"source": "llm", "diagnosis": LLM_TEXT})

    @staticmethod
    def rules_now(alert: Alert) -> Diagnosis:
        return diagnose_with_rules(alert)


class _Chat(Notifier):
    """Records sends and updates; answers a message id like Discord."""

    channel = "chat"

    def __init__(self) -> None:
        super().__init__(name="chat")
        self.sent: list[Notification] = []
        self.updates: list[tuple[Notification, SentMessage]] = []

    async def _send(self, notification: Notification) -> MessageIds | None:
        self.sent.append(notification)
        return {"message_id": f"m{len(self.sent)}"}

    async def _send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        self.updates.append((notification, sent))
        return "edited"


def _store(tmp_path: Path, route: str, *payloads: dict[str, Any]) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "r.db")
    store.init()
    items = [(AlertmanagerWebhook.model_validate(p), route, None) for p in payloads]
    store.ingest_many(items)
    return store


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _worker(store: SQLiteStore, llm: _HungLLM, notifiers: list[Notifier], **kw: Any) -> Worker:
    return Worker(
        store,
        llm.diagnose,
        lambda route: notifiers,
        poll_interval=0.05,
        fallback=llm.rules_now,
        critical_budget_seconds=kw.pop("budget", 0.05),
        **kw,
    )


def test_a_critical_page_goes_out_with_rules_and_the_llm_follows_as_an_update(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = _store(tmp_path, "critical", exchange_payload())
    chat, log_file = _Chat(), JsonlNotifier(tmp_path / "n.jsonl", name="log")

    async def main() -> None:
        llm = _HungLLM()
        worker = _worker(store, llm, [chat, log_file])
        worker.start()
        try:
            await _until(lambda: store.counts()["pending"] == 0)  # paged, LLM still hung
            assert llm.calls == 1 and not llm.release.is_set()
            assert worker.late_diagnoses == 1
            (page,) = chat.sent
            assert page.diagnosis.source == "rules" and chat.updates == []
            row = store.deliveries(page.id)["chat"]
            assert row.state == DeliveryState.DELIVERED
            assert SentMessage.from_json(row.message_ref).ids == {"message_id": "m1"}
            llm.release.set()
            await _until(lambda: len(chat.updates) == 1 and worker.late_diagnoses == 0)
        finally:
            await worker.stop()

    asyncio.run(main())
    (update, sent) = chat.updates[0]
    assert update.diagnosis.source == "llm" and update.diagnosis.diagnosis == LLM_TEXT
    assert update.id == chat.sent[0].id and sent.ids == {"message_id": "m1"}
    assert sent.sent_at is not None
    lines = [json.loads(x) for x in (tmp_path / "n.jsonl").read_text().splitlines()]
    assert [line.get("kind") for line in lines] == [None, "update"]
    assert lines[0]["diagnosis"]["source"] == "rules"
    assert lines[1]["notification_id"] == update.id
    assert lines[1]["diagnosis"]["diagnosis"] == LLM_TEXT
    assert store.due(float("inf")) == []  # done; the late diagnosis is stored on it
    db = sqlite3.connect(tmp_path / "r.db")
    (text,) = db.execute("SELECT diagnosis FROM notifications").fetchone()
    db.close()
    assert json.loads(text)["source"] == "llm"
    assert "paging with the rules' diagnosis" in caplog.text


def test_a_warning_notification_still_waits_for_the_llm(tmp_path: Path) -> None:
    store = _store(tmp_path, "warning", exchange_payload())
    chat = _Chat()

    async def main() -> None:
        llm = _HungLLM()
        worker = _worker(store, llm, [chat])
        worker.start()
        try:
            await _until(lambda: llm.calls == 1)
            await asyncio.sleep(0.3)  # far past the 0.05 s budget: still waiting
            assert chat.sent == []
            llm.release.set()
            await _until(lambda: store.counts()["pending"] == 0)
        finally:
            await worker.stop()

    asyncio.run(main())
    (sent,) = chat.sent
    assert sent.diagnosis.source == "llm" and chat.updates == []


def test_an_llm_answer_within_the_budget_is_sent_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path, "critical", exchange_payload())
    chat = _Chat()

    async def main() -> None:
        llm = _HungLLM()
        llm.release.set()
        worker = _worker(store, llm, [chat], budget=30.0)
        worker.start()
        try:
            await _until(lambda: store.counts()["pending"] == 0)
        finally:
            await worker.stop()

    asyncio.run(main())
    assert [n.diagnosis.source for n in chat.sent] == ["llm"] and chat.updates == []


def test_no_update_once_the_alert_resolved_or_when_the_llm_fails_too(tmp_path: Path) -> None:
    firing = exchange_payload()
    resolved = exchange_payload(status="resolved", ends_at="2026-11-21T07:40:00Z")
    store = _store(tmp_path, "critical", firing)
    chat = _Chat()

    async def main() -> None:
        llm = _HungLLM()
        worker = _worker(store, llm, [chat])
        worker.start()
        try:
            await _until(lambda: store.counts()["pending"] == 0)
            store.ingest_many([(AlertmanagerWebhook.model_validate(resolved), "critical", None)])
            worker.wake()
            await _until(lambda: len(chat.sent) == 2)
            llm.release.set()
            await _until(lambda: worker.late_diagnoses == 0)
        finally:
            await worker.stop()

    asyncio.run(main())
    assert [n.status for n in chat.sent] == ["firing", "resolved"]
    assert chat.updates == []  # the resolved message came first: no late edit

    async def rules_only(alert: Alert) -> Diagnosis:
        await asyncio.sleep(0.2)
        return diagnose_with_rules(alert)  # the LLM failed: rules again, no update

    store2 = _store(tmp_path / "b", "critical", exchange_payload())
    chat2 = _Chat()

    async def main2() -> None:
        worker = Worker(
            store2,
            rules_only,
            lambda route: [chat2],
            poll_interval=0.05,
            fallback=diagnose_with_rules,
            critical_budget_seconds=0.0,
        )
        worker.start()
        try:
            await _until(lambda: len(chat2.sent) == 1 and worker.late_diagnoses == 0)
        finally:
            await worker.stop()

    asyncio.run(main2())
    assert chat2.updates == []


def test_without_an_llm_nothing_changes(tmp_path: Path) -> None:
    store = _store(tmp_path, "critical", exchange_payload())
    chat = _Chat()

    async def slow_rules(alert: Alert) -> Diagnosis:
        await asyncio.sleep(0.2)  # e.g. a slow Prometheus context, no LLM configured
        return diagnose_with_rules(alert)

    async def main() -> None:
        worker = Worker(
            store, slow_rules, lambda route: [chat], poll_interval=0.05, fallback=None,
            critical_budget_seconds=0.0,
        )  # fmt: skip
        worker.start()
        try:
            await _until(lambda: store.counts()["pending"] == 0)
        finally:
            await worker.stop()

    asyncio.run(main())
    assert len(chat.sent) == 1 and chat.updates == []


def _other(exchange: str, fingerprint: str) -> dict[str, Any]:
    """Another alert of the incident: its own group and fingerprint."""
    payload = exchange_payload(exchange=exchange, fingerprint=fingerprint)
    payload["groupKey"] = f'{{}}:{{alertname="ExchangeApiDown", exchange="{exchange}"}}'
    return payload


async def _page_after_the_llm_answered(
    store: SQLiteStore, worker: Worker, llm: _HungLLM, chat: _Chat, pages: int
) -> None:
    """Release the hung LLM, wait for its updates, then page once more (kraken) with the LLM
    hung again until that page has gone out (``pages`` messages in all)."""
    llm.release.set()
    await _until(lambda: len(chat.updates) == pages - 1 and worker.late_diagnoses == 0)
    llm.release.clear()
    webhook = AlertmanagerWebhook.model_validate(_other("kraken", "f00dfeed00000003"))
    store.ingest_many([(webhook, "critical", None)])
    worker.wake()
    await _until(lambda: len(chat.sent) == pages)
    llm.release.set()


def _budget_waits(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """Record the timeout of every ``asyncio.wait`` in ``receiver.updates`` (the budget waits
    among them) in the returned list: waits are checked by value, not timed."""
    waits: list[float | None] = []
    real_wait = asyncio.wait

    async def recording_wait(tasks: Any, timeout: float | None = None) -> Any:
        waits.append(timeout)
        return await real_wait(tasks, timeout=timeout)

    monkeypatch.setattr("receiver.updates.asyncio.wait", recording_wait)
    return waits


def test_while_an_earlier_diagnosis_is_overdue_the_next_page_does_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two pages of one incident (two exchanges) while the LLM hangs: the first waits the
    budget, the second none (the waits are recorded, not timed); both diagnoses follow."""
    caplog.set_level(logging.INFO)
    store = _store(tmp_path, "critical", exchange_payload(exchange="binance"))
    chat = _Chat()
    waits = _budget_waits(monkeypatch)

    async def main() -> None:
        llm = _HungLLM()
        worker = _worker(store, llm, [chat], budget=0.2)
        worker.start()
        try:
            await _until(lambda: len(chat.sent) == 1)
            items = [
                (
                    AlertmanagerWebhook.model_validate(_other("bybit", "f00dfeed00000002")),
                    "critical",
                    None,
                )
            ]
            store.ingest_many(items)
            worker.wake()
            await _until(lambda: len(chat.sent) == 2)
            assert llm.calls == 2 and not llm.release.is_set()
            # The LLM answered: the next page waits the budget again.
            await _page_after_the_llm_answered(store, worker, llm, chat, 3)
        finally:
            await worker.stop()

    asyncio.run(main())
    # The budget waits (a round still in flight may add an unbounded wait for it, then the
    # stop's grace comes last).
    assert [w for w in waits if w is not None][:3] == [0.2, 0.0, 0.2]
    assert [n.diagnosis.source for n in chat.sent] == ["rules", "rules", "rules"]
    assert "an earlier diagnosis is still running past its budget" in caplog.text


def test_while_the_llm_is_unreachable_no_page_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The first LLM provider is known not to answer (``llm_unreachable``): the page waits
    nothing, and the diagnosis still follows as an update when it comes; once the provider
    answers again, the next page waits the budget (the waits are recorded, not timed)."""
    caplog.set_level(logging.INFO)
    store = _store(tmp_path, "critical", exchange_payload(exchange="binance"))
    chat = _Chat()
    waits = _budget_waits(monkeypatch)
    unreachable = [True]

    async def main() -> None:
        llm = _HungLLM()
        worker = _worker(store, llm, [chat], budget=0.2, llm_unreachable=lambda: unreachable[0])
        worker.start()
        try:
            await _until(lambda: len(chat.sent) == 1)
            unreachable[0] = False  # it answers again: the next page waits the budget
            await _page_after_the_llm_answered(store, worker, llm, chat, 2)
        finally:
            await worker.stop()

    asyncio.run(main())
    assert [w for w in waits if w is not None][:2] == [0.0, 0.2]
    assert [n.diagnosis.source for n in chat.sent] == ["rules", "rules"]
    assert chat.updates[0][0].diagnosis.source == "llm"
    assert "the LLM does not answer; paging at once" in caplog.text
