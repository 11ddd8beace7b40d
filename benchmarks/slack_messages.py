"""The fake Slack side of the stack benchmarks: which alert, exchange and status a message the
receiver rendered for Slack is about (:func:`parse_slack_message`), and waiting for one
(:func:`wait_for_message`). Shared by ``bench_notify``, ``bench_detection``, ``bench_llm_budget``
and ``ws_stale``.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from receiver.models import parse_rfc3339
from testsupport.fake_chat import ChatRequest, FakeChat

SLACK_PATH = "/slack/T000/B000/bench-notify"
"""The fake Slack webhook path the stack benchmarks point the receiver at."""

_HEADER = re.compile(r"^(?:🔴 FIRING|✅ RESOLVED): (?P<alert>[^\s·]+)(?: · (?P<exchange>\S+))?")
_FALLBACK = re.compile(
    r"^(?:🔴 FIRING|✅ RESOLVED): (?P<alert>[^\s·]+)"
    r"(?: (?:· (?P<exchange>\S+)|\[(?P<bracketed>[^\]]+)\]))?"
)
_SINCE = re.compile(r"\bsince (?P<ts>\S+)")


@dataclass(frozen=True)
class SlackMessage:
    """What a receiver Slack message is about.

    Attributes:
        status: ``firing`` or ``resolved``.
        alertname: the alert.
        exchange: the ``exchange`` label (None for global alerts).
        starts_at: for firing messages, the alert's ``startsAt`` (when Prometheus fired it) as
            Unix seconds, when the message shows it.
    """

    status: str
    alertname: str
    exchange: str | None
    starts_at: float | None = None

    def matches(self, alertname: str, exchange: str, status: str) -> bool:
        """Whether this message is ``status`` for ``alertname`` on ``exchange``."""
        return (self.alertname, self.exchange, self.status) == (alertname, exchange, status)


def parse_slack_message(body: Any) -> SlackMessage | None:
    """Read alert, exchange and status from a Slack webhook body the receiver rendered.

    The Block Kit fields (``*Alert*``, ``*Exchange*``, ``*Status*``) win; the header block
    (``🔴 FIRING: ExchangeApiDown · binance``) and the ``text`` fallback
    (``🔴 FIRING: ExchangeApiDown [binance] (critical) - …``) fill what they lack. Returns None
    for a body that is not such a message.
    """
    if not isinstance(body, dict):
        return None
    fields: dict[str, str] = {}
    header: str | None = None
    starts_at: float | None = None
    for block in body.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "header" and isinstance(block.get("text"), dict):
            header = str(block["text"].get("text", ""))
        elif kind == "section":
            for item in block.get("fields") or []:
                text = item.get("text") if isinstance(item, dict) else None
                if isinstance(text, str) and text.startswith("*") and "*\n" in text:
                    title, value = text[1:].split("*\n", 1)
                    fields[title.strip()] = value.strip()
        elif kind == "context" and starts_at is None:
            for item in block.get("elements") or []:
                text = item.get("text") if isinstance(item, dict) else None
                if not isinstance(text, str):
                    continue
                found = _SINCE.search(text)
                if found and "Firing" in text:
                    with contextlib.suppress(ValueError):
                        starts_at = parse_rfc3339(found["ts"]).timestamp()
    found = None
    if header is not None:
        found = _HEADER.match(header)
    if found is None and isinstance(body.get("text"), str):
        found = _FALLBACK.match(body["text"])
    head_status = None
    source = header if header is not None else body.get("text")
    if isinstance(source, str):
        if source.startswith("🔴 FIRING"):
            head_status = "firing"
        elif source.startswith("✅ RESOLVED"):
            head_status = "resolved"
    status = (fields.get("Status") or head_status or "").lower()
    alertname = fields.get("Alert") or (found["alert"] if found else None)
    exchange = fields.get("Exchange") or (
        (found.groupdict().get("exchange") or found.groupdict().get("bracketed")) if found else None
    )
    if status not in ("firing", "resolved") or not alertname:
        return None
    if exchange in ("", "-"):
        exchange = None
    return SlackMessage(status, alertname, exchange, starts_at if status == "firing" else None)


def wait_for_message(
    chat: FakeChat,
    predicate: Callable[[SlackMessage], bool],
    after: float,
    timeout: float,
    abort: threading.Event | None = None,
) -> tuple[ChatRequest, SlackMessage] | None:
    """The first Slack post at the fake chat that arrived at or after monotonic time ``after``
    and whose message (:func:`parse_slack_message`) satisfies ``predicate``, with that message;
    waits up to ``timeout`` seconds (less once ``abort`` is set); None when none came."""

    def matches(body: Any) -> bool:
        message = parse_slack_message(body)
        return message is not None and predicate(message)

    found = chat.wait_for(SLACK_PATH, matches, timeout, after=after, abort=abort)
    if found is None:
        return None
    message = parse_slack_message(found.body)
    assert message is not None
    return found, message
