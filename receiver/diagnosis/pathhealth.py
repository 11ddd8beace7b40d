"""Where the probes' time went: the evidence of the request phases and the TLS certificate.

For latency alerts (the category found so far is ``latency_degradation``), the phases of
:class:`~receiver.diagnosis.schema.PathState` (:mod:`receiver.diagnosis.pathcontext`: the
average of each phase over the recent window against the window before the alert) say where the
extra time went, as blackbox_exporter's ``probe_http_duration_seconds`` phases do:

* ``connect`` and/or ``tls`` slowed → the network path (our ISP, the egress proxy, the route; a
  TLS handshake slowed alone: a TLS-inspecting middlebox, the proxy, or the exchange's TLS
  front): root cause ``network``, the ``network_path`` runbook, its check first;
* ``resolve`` slowed → our DNS resolver: ``network`` and the same runbook, the resolver first;
* ``processing`` (request sent to the first byte) slowed → the exchange's backend: the alert's
  own category is confirmed, the exchange-side advice first;
* ``transfer`` (first to last byte) slowed → our bandwidth or larger answers: no category.

A phase "slowed" when it is at least :data:`MIN_INCREASE_SECONDS` slower and at least
:data:`MIN_RATIO` times its value before; without a value before (no new connection then), when
it takes :data:`NO_BASELINE_SLOW_SECONDS` or more. The group whose phases added the most time
decides; the breakdown itself is always one sentence of the diagnosis.

For ``ExchangeTlsCertExpiringSoon``, and any alert with failed TLS handshakes (``tls_error``)
over the window, the certificate's expiry (``exchange_tls_cert_expiry_timestamp_seconds``).
"""

from __future__ import annotations

from receiver.diagnosis.case import Case, Finding, Findings
from receiver.diagnosis.case import category_so_far as _category
from receiver.diagnosis.pathcontext import expiry_phrase, phase_text
from receiver.diagnosis.schema import PathState, PhaseTiming
from receiver.diagnosis.stats import fmt_value

#: A phase must be at least this much slower (seconds) than before to count as slowed.
MIN_INCREASE_SECONDS = 0.05
#: ... and at least this many times its value before.
MIN_RATIO = 2.0
#: Without a value before, a phase this slow (seconds) counts as slowed.
NO_BASELINE_SLOW_SECONDS = 1.0

#: Phase → the part of the path it blames.
GROUPS: dict[str, str] = {
    "resolve": "dns",
    "connect": "setup",
    "tls": "setup",
    "processing": "backend",
    "transfer": "transfer",
}

#: The alerts whose diagnosis always quotes the certificate's expiry (any other alert does when
#: TLS handshakes failed over the window: an expired certificate is one reason).
TLS_ALERTS = frozenset({"ExchangeTlsCertExpiringSoon"})


def increase(timing: PhaseTiming) -> float:
    """Seconds ``timing`` slowed by (0 when it did not slow, see the module docstring)."""
    if timing.now is None:
        return 0.0
    if timing.before is None:
        return timing.now if timing.now >= NO_BASELINE_SLOW_SECONDS else 0.0
    delta = timing.now - timing.before
    if delta >= MIN_INCREASE_SECONDS and timing.now >= MIN_RATIO * timing.before:
        return delta
    return 0.0


def slowed(path: PathState) -> tuple[str, list[PhaseTiming]] | None:
    """The group (``dns``, ``setup``, ``backend``, ``transfer``) that added the most time and its
    slowed phases, or ``None`` when no phase slowed."""
    totals: dict[str, float] = {}
    phases: dict[str, list[PhaseTiming]] = {}
    for timing in path.phases:
        extra = increase(timing)
        if extra > 0:
            group = GROUPS[timing.phase]
            totals[group] = totals.get(group, 0.0) + extra
            phases.setdefault(group, []).append(timing)
    if not totals:
        return None
    group = max(totals, key=lambda g: totals[g])
    return group, phases[group]


def _change(timing: PhaseTiming | None) -> str | None:
    """``12.0 ms → 310 ms`` (``310 ms`` without a value before; ``None`` without one now)."""
    if timing is None or timing.now is None:
        return None
    now = fmt_value(timing.now, "seconds")
    return f"{fmt_value(timing.before, 'seconds')} → {now}" if timing.before is not None else now


def _named(timings: list[PhaseTiming]) -> str:
    names = {"resolve": "DNS", "connect": "TCP connect", "tls": "TLS handshake"}
    return ", ".join(f"{names.get(t.phase, t.phase)} {_change(t)}" for t in timings)


def breakdown(path: PathState) -> str:
    """The phases as one sentence of the diagnosis."""
    return (
        f"Request phases of the probes (average, last {path.window / 60:.0f} min against the "
        f"{path.baseline_window / 60:.0f} min before the alert): "
        + ", ".join(phase_text(t) for t in path.phases)
        + "."
    )


def _setup(case: Case, path: PathState, timings: list[PhaseTiming]) -> Finding:
    exchange = case.values["exchange"]
    processing = _change(path.timing("processing"))
    answers = (
        f"{exchange} answers as fast as before once connected (processing {processing})"
        if processing
        else f"{exchange}'s answers did not slow"
    )
    if [t.phase for t in timings] == ["tls"]:
        connect = _change(path.timing("connect"))
        tcp = f" ({connect})" if connect else ""
        sentence = (
            f"The TLS handshake slowed ({_named(timings)}) while the TCP connect did not{tcp} "
            f"and {answers}: a TLS-inspecting middlebox or the egress proxy on our path, or "
            f"{exchange}'s TLS front (CDN) - not its API servers."
        )
    else:
        sentence = (
            f"Connection setup slowed ({_named(timings)}) while {answers}: the network path - "
            f"our ISP, the egress proxy (its CONNECT counts in connect) or the route - not "
            f"{exchange}'s servers."
        )
    return Finding(
        sentences=(sentence,),
        lead_actions=(
            f"Find where connection setup slows first: time a TCP connect and TLS handshake to "
            f"the {exchange} API host from the exporter host with and without the egress proxy "
            "(`proxy_url`), and from another network or location; a TLS-inspecting middlebox "
            "slows the handshake only.",
        ),
        category="network",
        runbook="network_path",
    )


def _dns(case: Case, timings: list[PhaseTiming]) -> Finding:
    exchange = case.values["exchange"]
    return Finding(
        sentences=(
            f"DNS resolution slowed ({_named(timings)}): our resolver or its upstream (the "
            f"proxy's name when a proxy is configured), not {exchange} - every new connection "
            "waits for it.",
        ),
        lead_actions=(
            f"Check our DNS resolver from the exporter host first: time `dig` of the {exchange} "
            "API host against it and against another resolver; fix or replace a slow one (a "
            "local cache helps).",
        ),
        category="network",
        runbook="network_path",
    )


def _backend(case: Case, timings: list[PhaseTiming]) -> Finding:
    exchange = case.values["exchange"]
    return Finding(
        sentences=(
            f"The time went into {exchange}'s processing (request sent to first byte: "
            f"{_change(timings[0])}) while connection setup did not slow: {exchange}'s backend "
            "is slow (load, volatile markets, or throttling before 429s), not our network path.",
        ),
        lead_actions=(
            f"Treat the slowdown as {exchange}-side: check its status page, cut request weight "
            "and widen timeouts; our path is fine (connect and TLS at their usual times).",
        ),
        support=True,
    )


def _transfer(case: Case, timings: list[PhaseTiming]) -> Finding:
    exchange = case.values["exchange"]
    return Finding(
        sentences=(
            f"The time went into transferring the answers (first to last byte: "
            f"{_change(timings[0])}): our link's bandwidth (other traffic, the proxy's "
            f"throughput) or larger answers (a deeper order book), not {exchange}'s processing.",
        ),
        lead_actions=(
            "Check the exporter host's bandwidth use (other traffic on the link, the proxy's "
            "throughput) and the answer sizes of the slow endpoints.",
        ),
    )


def request_phases(case: Case, so_far: Findings) -> Finding | None:
    """Latency alerts: which request phase slowed, and so which part of the path is slow."""
    path = case.context.path if case.context is not None else None
    if path is None or not path.phases or _category(case, so_far) != "latency_degradation":
        return None
    lines = Finding(sentences=(breakdown(path),))
    found = slowed(path)
    if found is None:
        return lines
    group, timings = found
    if group == "setup":
        verdict = _setup(case, path, timings)
    elif group == "dns":
        verdict = _dns(case, timings)
    elif group == "backend":
        verdict = _backend(case, timings)
    else:
        verdict = _transfer(case, timings)
    return Finding(
        sentences=(*lines.sentences, *verdict.sentences),
        lead_actions=verdict.lead_actions,
        category=verdict.category,
        runbook=verdict.runbook,
        support=verdict.support,
    )


def tls_certificate(case: Case, so_far: Findings) -> Finding | None:
    """The TLS certificate alert, or failed handshakes: when the earliest certificate of the
    chain presented expires (or expired)."""
    ctx = case.context
    path = ctx.path if ctx is not None else None
    if ctx is None or path is None or path.tls_cert_expiry is None:
        return None
    handshakes_fail = any(c.cls == "tls" for c in ctx.counts)
    if case.alert.alertname not in TLS_ALERTS and not handshakes_fail:
        return None
    when = expiry_phrase(path.tls_cert_expiry, ctx.end)
    return Finding(
        sentences=(
            f"The earliest certificate of the chain presented for {case.values['exchange']} "
            f"{when}.",
        ),
        support=True,
    )
