"""The ``exchange_api_key_*`` metrics. Names are fixed by issue 14: rules and dashboards use them.

Labels: ``exchange`` and ``key`` (configured names: never the key itself), ``result``
(:class:`~exporter.keys.model.KeyResult`) and ``permission``
(:class:`~exporter.keys.model.Permission`): cardinality is bounded by the config.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from exporter.keys.model import KeyFacts, KeyResult, Permission


class KeyMetrics:
    """Every ``exchange_api_key_*`` metric, registered on the exporter's registry.

    Args:
        registry: the exporter's registry (``ExporterMetrics.registry``).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.up = Gauge(
            "exchange_api_key_up",
            "1 when the last signed key-info call with the key was accepted by the exchange, "
            "else 0 (see exchange_api_key_checks_total for why).",
            ["exchange", "key"],
            registry=r,
        )
        self.checks = Counter(
            "exchange_api_key_checks",
            "Signed key-info calls by outcome; result is one of ok, invalid_key, "
            "invalid_signature, timestamp, ip_not_allowed, expired, permission_denied, "
            "rate_limited, other.",
            ["exchange", "key", "result"],
            registry=r,
        )
        self.expiry = Gauge(
            "exchange_api_key_expiry_timestamp_seconds",
            "Unix time when the key stops working: from the exchange's own answer where it "
            "gives one (Bybit expiredAt, Kraken validUntil, Binance "
            "tradingAuthorityExpirationTime), else from its documented key policy (Binance: "
            "spot trading switched off 30 days after creation without IP restriction; Bybit: "
            "keys without IP binding invalid 90 days after creation). The exporter's /status "
            "says which (api_keys.<key>.expiry.source). Absent when nothing expires.",
            ["exchange", "key"],
            registry=r,
        )
        self.permission = Gauge(
            "exchange_api_key_permission",
            "1 when the key has the permission, 0 when it has not, as the exchange's key-info "
            "answer tells (its own permissions mapped to read, trade, withdraw, transfer); "
            "absent where the exchange does not say.",
            ["exchange", "key", "permission"],
            registry=r,
        )
        self.ip_restricted = Gauge(
            "exchange_api_key_ip_restricted",
            "1 when the key is bound to IP addresses, 0 when it works from any address; absent "
            "where the exchange does not say (Coinbase).",
            ["exchange", "key"],
            registry=r,
        )

    def all(self) -> list[Any]:
        """Every metric object, in exposition order."""
        return [self.up, self.checks, self.expiry, self.permission, self.ip_restricted]

    def declare(self, exchange: str, key: str) -> None:
        """Create the key's check counters at 0 for every result, so rules see the first
        failure as an increase."""
        for result in KeyResult:
            self.checks.labels(exchange, key, result.value)

    def record(self, exchange: str, key: str, result: KeyResult, facts: KeyFacts | None) -> None:
        """Count one check and update the key's state; ``facts`` (accepted answers only)
        replace the permission, IP and expiry series, which otherwise keep their last
        values."""
        self.checks.labels(exchange, key, result.value).inc()
        self.up.labels(exchange, key).set(1 if result is KeyResult.OK else 0)
        if facts is None:
            return
        for permission in Permission:
            granted = facts.permissions.get(permission)
            if granted is None:
                self.permission.remove_by_labels(
                    {"exchange": exchange, "key": key, "permission": permission.value}
                )
            else:
                self.permission.labels(exchange, key, permission.value).set(1 if granted else 0)
        if facts.ip_restricted is None:
            self.ip_restricted.remove_by_labels({"exchange": exchange, "key": key})
        else:
            self.ip_restricted.labels(exchange, key).set(1 if facts.ip_restricted else 0)
        if facts.expires_at is None:
            self.expiry.remove_by_labels({"exchange": exchange, "key": key})
        else:
            self.expiry.labels(exchange, key).set(facts.expires_at)

    def forget_key(self, exchange: str, key: str) -> None:
        """Remove every series of a key that is no longer configured."""
        for metric in self.all():
            metric.remove_by_labels({"exchange": exchange, "key": key})

    def forget_exchange(self, exchange: str) -> None:
        """Remove every ``exchange_api_key_*`` series of an exchange."""
        for metric in self.all():
            metric.remove_by_labels({"exchange": exchange})
