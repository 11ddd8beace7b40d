"""Evidence from the alert and its Prometheus context: one small function per kind of evidence.

Every function has the same signature, :data:`Evidence`: it reads the :class:`Case` (the alert,
its knowledge entry, the context) and what the functions before it found (:class:`Findings`),
and returns a :class:`Finding` or ``None``. :func:`analyse` runs :data:`EVIDENCE` in order and
merges the findings: sentences and actions are appended, "lead" ones go first (most urgent), a
category replaces the one found so far, support accumulates.

* the alert's own labels (:func:`label_notes`, e.g. the budget burn's ``window``);
* error codes, HTTP statuses and probe results counted over the window, classified by
  :mod:`receiver.diagnosis.codes` (:func:`error_codes`): their advice goes first and, for symptom
  alerts, a clearly dominant class changes the category (e.g. -1021 everywhere → clock skew);
* for the API-key alerts, the key's earlier state and the clock skew
  (:func:`receiver.diagnosis.keyhealth.api_key`): revoked key, IP allow-list change, clock skew,
  wrong secret, expiry, permission change;
* for the market-integrity alerts, their market context (:func:`receiver.diagnosis.markethealth.
  market`): stale or stuck venue, local basis, wrong mapping, venue-only spike or market-wide
  move, the rate-limit window's time to the limit, the announced maintenance window;
* the other exchanges' state (:func:`our_network`, :func:`other_exchanges_answer`,
  :func:`failing_exchanges`): every other exchange down at once → our network;
* where the probes' time goes (:func:`receiver.diagnosis.pathhealth.request_phases`): for
  latency alerts, the request phase that slowed against the window before the alert - slow
  connect or TLS → the network path, slow DNS → our resolver, slow processing → the exchange's
  backend, slow transfer → bandwidth or larger answers; the TLS certificate's expiry for the TLS
  alerts (:func:`receiver.diagnosis.pathhealth.tls_certificate`);
* the series statistics where they matter for the category found so far (z-score against the
  pre-alert baseline, least-squares trend): latency, rate-limit usage and the time to reach the
  limit, the sign and drift of the clock skew, the error ratio.
"""

from __future__ import annotations

from typing import cast

from receiver.diagnosis.case import Case, Evidence, Finding, Findings
from receiver.diagnosis.case import category_so_far as _category
from receiver.diagnosis.codes import CLASS_CATEGORY
from receiver.diagnosis.keyhealth import api_key
from receiver.diagnosis.knowledge import CLASS_BY_NAME, KNOWLEDGE_BASE, fill
from receiver.diagnosis.markethealth import market
from receiver.diagnosis.pathhealth import request_phases, tls_certificate
from receiver.diagnosis.schema import CodeCount, Context, RootCauseCategory
from receiver.diagnosis.stats import baseline_text, fmt_count, fmt_number, fmt_value, slope_text

_EXCHANGE_SIDE = frozenset({"outage", "partial_outage"})


def _code_list(items: list[CodeCount], limit: int = 4) -> str:
    bits = []
    for c in items[:limit]:
        label = c.code if c.kind != "http_status" else f"HTTP {c.code}"
        where = f" on {c.endpoint}" if c.endpoint else ""
        bits.append(f"{label} ×{fmt_count(c.count)}{where}")
    return ", ".join(bits)


def class_tally(ctx: Context) -> dict[str, tuple[float, list[CodeCount]]]:
    """Per class: the count (max over the three sources, to avoid double counting) and items.

    Items are ordered for display, most specific source first (codes, statuses, results); probe
    results are left out when codes or statuses say the same more precisely.
    """
    by_source: dict[str, dict[str, float]] = {}
    items: dict[str, list[CodeCount]] = {}
    for c in ctx.counts:
        if c.cls in ("ok", "unknown"):
            continue
        if c.kind == "result" and c.code in ("http_error", "api_error"):
            continue  # detailed by HTTP statuses and error codes
        by_source.setdefault(c.cls, {}).setdefault(c.kind, 0.0)
        by_source[c.cls][c.kind] += c.count
        items.setdefault(c.cls, []).append(c)
    tally: dict[str, tuple[float, list[CodeCount]]] = {}
    for cls, sources in by_source.items():
        ordered = sorted(
            items[cls],
            key=lambda c: (
                {"error_code": 0, "http_status": 1, "result": 2}[c.kind],
                -c.count,
            ),
        )
        if any(c.kind != "result" for c in ordered):
            ordered = [c for c in ordered if c.kind != "result"]
        tally[cls] = (max(sources.values()), ordered)
    return tally


# --- the alert's labels -----------------------------------------------------------------------


def label_notes(case: Case, so_far: Findings) -> Finding | None:
    """The entry's sentences for label values the alert carries (e.g. ``window="fast"``).

    Only for an alert matched by name: an unknown alert's labels mean nothing to the entry.
    """
    if not case.exact:
        return None
    labels = case.alert.labels
    notes = tuple(text for key, value, text in case.entry.label_notes if labels.get(key) == value)
    return Finding(sentences=notes) if notes else None


# --- codes, statuses and results --------------------------------------------------------------


def error_codes(case: Case, so_far: Findings) -> Finding | None:
    """The two largest evidence classes: their sentences and advice; maybe a new category."""
    if case.context is None:
        return None
    tally = class_tally(case.context)
    if not tally:
        return None
    total = sum(count for count, _ in tally.values())
    ranked = sorted(tally.items(), key=lambda kv: -kv[1][0])
    up, others = case.exchanges()
    sentences: list[str] = []
    actions: list[str] = []
    classes: list[str] = []
    for cls, (count, items) in ranked[:2]:
        texts = CLASS_BY_NAME.get(cls)
        if texts is None:
            continue
        values = {**case.values, "codes": _code_list(items), "n": fmt_count(count)}
        sentences.append(fill(texts.sentence, values))
        if cls in ("network", "dns") and others >= 1 and up == 0:
            continue  # our_network brings its own actions
        actions.append(fill(texts.action, values))
        classes.append(cls)
    dominant, (count, _) = ranked[0]
    category = CLASS_CATEGORY.get(dominant)
    entry_category = case.entry.category
    support = category == entry_category or {category, entry_category} <= _EXCHANGE_SIDE
    dominant_enough = case.symptom and count >= 3 and count >= 0.5 * total
    override: RootCauseCategory | None = None
    runbook: str | None = None
    if not support and category is not None and dominant_enough:
        override = cast(RootCauseCategory, category)
        texts = CLASS_BY_NAME.get(dominant)
        runbook = texts.runbook if texts is not None else None
    return Finding(
        sentences=tuple(sentences),
        actions=tuple(actions),
        classes=tuple(classes),
        category=override,
        runbook=runbook,
        support=support,
    )


# --- the other exchanges ----------------------------------------------------------------------


def _everything_else_down(case: Case) -> bool:
    ctx = case.context
    if ctx is None or ctx.exchange is None or (case.exact and not case.entry.blame_network):
        return False
    up, others = case.exchanges()
    return others >= 2 and up == 0


def our_network(case: Case, so_far: Findings) -> Finding | None:
    """Every other monitored exchange is down too: our network, not the exchange."""
    if not _everything_else_down(case):
        return None
    _, others = case.exchanges()
    entry = case.entry
    network = case.symptom or entry.category in ("latency_degradation", "data_quality")
    return Finding(
        lead_sentences=(
            f"Every other monitored exchange is down too (0/{others} up): the fault is on our "
            f"side (network, DNS, egress), not {case.values['exchange']}.",
        ),
        lead_actions=(
            "Check our egress first: DNS resolution, default route, firewall/NAT/proxy from the "
            "exporter and bot hosts - every exchange fails at once.",
        ),
        category="network" if network else None,
    )


def other_exchanges_answer(case: Case, so_far: Findings) -> Finding | None:
    """Other exchanges answer: the problem is specific to this exchange or our route to it."""
    ctx = case.context
    category = case.entry.category
    if ctx is None or ctx.exchange is None or _everything_else_down(case):
        return None
    if category not in ("outage", "partial_outage", "latency_degradation"):
        return None
    up, others = case.exchanges()
    if others < 1:
        return None
    return Finding(
        sentences=(
            f"Other exchanges answer ({up}/{others} up): the problem is specific to "
            f"{case.values['exchange']} or our route to it.",
        ),
        support=category == "outage",
    )


def failing_exchanges(case: Case, so_far: Findings) -> Finding | None:
    """For a global network alert: how many exchanges answer right now, and which fail."""
    ctx = case.context
    if ctx is None or ctx.exchange is not None or case.entry.category != "network":
        return None
    up, others = case.exchanges()
    if others < 1:
        return None
    down = sorted(k for k, ok in ctx.exchanges_up.items() if not ok)
    sentence = f"Right now {up}/{others} exchanges have an endpoint answering"
    sentence += f" (failing: {', '.join(down[:6])})." if down else "."
    return Finding(sentences=(sentence,))


# --- series statistics ------------------------------------------------------------------------


def latency(case: Case, so_far: Findings) -> Finding | None:
    """Latency alerts: the p99 against its pre-alert level, and its trend."""
    lat = case.context.stats("latency_p99") if case.context is not None else None
    if lat is None or _category(case, so_far) != "latency_degradation":
        return None
    if lat.z is None or lat.z < 3:
        return Finding(sentences=(f"{lat.text}.",))
    sentence = (
        f"p99 latency is {fmt_value(lat.current, 'seconds')}, {lat.z:.1f} standard "
        f"deviations above its level before the alert ({baseline_text(lat, 'seconds')})"
    )
    slope = slope_text(lat, "seconds")
    if lat.trend == "rising":
        sentence += f", and still rising ({slope})"
    elif lat.trend == "falling":
        sentence += f", but falling again ({slope}): recovering"
    return Finding(sentences=(sentence + ".",), support=True)


def throttling_prelude(case: Case, so_far: Findings) -> Finding | None:
    """Latency alerts: rising rate-limit usage means the exchange may be throttling this IP."""
    ctx = case.context
    if ctx is None or _category(case, so_far) != "latency_degradation":
        return None
    rl = ctx.stats("rate_limit_usage")
    if ctx.stats("latency_p99") is None or rl is None or rl.current < 0.5 or rl.trend != "rising":
        return None
    usage = fmt_value(rl.current, "ratio")
    return Finding(
        sentences=(
            f"Rate-limit usage is {usage} and rising: the slowdown may be the exchange "
            "throttling this IP before it answers 429.",
        ),
        lead_actions=(
            f"Cut request weight on {case.values['exchange']} now: rate-limit usage is "
            f"{usage} and rising alongside latency.",
        ),
    )


def rate_limit_usage(case: Case, so_far: Findings) -> Finding | None:
    """Rate-limit and ban alerts: the usage and, when rising, the time to reach the limit."""
    rl = case.context.stats("rate_limit_usage") if case.context is not None else None
    if rl is None or _category(case, so_far) not in ("rate_limit", "ip_ban"):
        return None
    sentence = f"{rl.text}."
    slope = rl.slope_per_minute
    if rl.trend == "rising" and slope is not None and slope > 0 and rl.current < 1:
        minutes = (1 - rl.current) / slope
        sentence += f" At this trend the limit is reached in about {fmt_number(minutes)} min."
    return Finding(sentences=(sentence,), support=rl.current >= 0.75)


def order_count_limit(case: Case, so_far: Findings) -> Finding | None:
    """Binance -1015 is the order-count limit, not request weight."""
    ctx = case.context
    if ctx is None or ctx.stats("rate_limit_usage") is None:
        return None
    if _category(case, so_far) not in ("rate_limit", "ip_ban"):
        return None
    if not any(c.kind == "error_code" and c.code == "-1015" for c in ctx.counts):
        return None
    return Finding(
        sentences=(
            "-1015 TOO_MANY_ORDERS is Binance's order-count limit, not request weight: slow "
            "down order placement rather than market-data polling.",
        )
    )


def clock_skew(case: Case, so_far: Findings) -> Finding | None:
    """Clock-skew alerts: which way our clock is off, and whether it drifts or jumped."""
    skew = case.context.stats("clock_skew") if case.context is not None else None
    if skew is None or _category(case, so_far) != "clock_skew":
        return None
    magnitude = fmt_value(abs(skew.current), "seconds")
    exchange = case.values["exchange"]
    if skew.current < 0:
        sentence = (
            f"Our clock is {magnitude} ahead of {exchange}: Binance rejects timestamps "
            "more than 1 s ahead of its server time (-1021 '...ahead of the server's time')."
        )
    else:
        sentence = (
            f"Our clock is {magnitude} behind {exchange}: signed requests look old and "
            "are rejected once they are older than recvWindow (-1021 'outside of the "
            "recvWindow', Bybit 10002)."
        )
    if skew.trend != "flat" and skew.slope_per_minute is not None:
        sentence += (
            f" It is drifting {fmt_value(abs(skew.slope_per_minute), 'seconds')}/min: time "
            "sync is not correcting it."
        )
    elif skew.z is not None and abs(skew.z) >= 3:
        sentence += (
            " It jumped as a step (flat since): look for a VM migration, suspend/resume or a "
            "manual clock change."
        )
    return Finding(sentences=(sentence + f" ({skew.text}).",), support=True)


def skew_distorts_age(case: Case, so_far: Findings) -> Finding | None:
    """Stale-data alerts: a wrong clock distorts the measured age; fix the clock first."""
    skew = case.context.stats("clock_skew") if case.context is not None else None
    if skew is None or _category(case, so_far) != "data_quality" or abs(skew.current) < 1.0:
        return None
    return Finding(
        sentences=(
            f"Clock skew is {fmt_value(skew.current, 'seconds', signed=True)}: the age is "
            "measured with the skew correction, so a wrong clock distorts it - fix the clock "
            "before trusting this alert.",
        ),
        lead_actions=(KNOWLEDGE_BASE["ExchangeClockSkewHigh"].actions[0],),
    )


def error_ratio(case: Case, so_far: Findings) -> Finding | None:
    """Outage alerts: the error ratio against its pre-alert level."""
    err = case.context.stats("error_ratio") if case.context is not None else None
    if err is None or _category(case, so_far) not in _EXCHANGE_SIDE:
        return None
    return Finding(sentences=(f"{err.text}.",), support=err.z is not None and err.z >= 3)


def latency_alongside(case: Case, so_far: Findings) -> Finding | None:
    """Outage and rate-limit alerts: latency far above its pre-alert level too."""
    ctx = case.context
    lat = ctx.stats("latency_p99") if ctx is not None else None
    if ctx is None or lat is None or lat.z is None or lat.z < 3:
        return None
    category = _category(case, so_far)
    if category in _EXCHANGE_SIDE and ctx.stats("error_ratio") is not None:
        return Finding(sentences=(f"Latency is up too: {lat.text}.",))
    if category in ("rate_limit", "ip_ban"):
        return Finding(sentences=(f"Latency rose with it: {lat.text}.",))
    return None


#: The evidence, in order: causes first (codes, other exchanges), then the statistics that
#: matter for the category found so far.
EVIDENCE: tuple[Evidence, ...] = (
    label_notes,
    error_codes,
    api_key,
    market,
    our_network,
    other_exchanges_answer,
    failing_exchanges,
    tls_certificate,
    latency,
    request_phases,
    throttling_prelude,
    rate_limit_usage,
    order_count_limit,
    clock_skew,
    skew_distorts_age,
    error_ratio,
    latency_alongside,
)


def analyse(case: Case) -> Findings:
    """Run :data:`EVIDENCE` over ``case`` and merge the findings.

    A category equal to the alert's own is no override: it becomes support.
    """
    found = Findings()
    for evidence in EVIDENCE:
        found.add(evidence(case, found))
    if found.category == case.entry.category:
        found.category = None
        found.runbook = None
        found.support = True
    return found
