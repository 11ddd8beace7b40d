"""API keys the simulated exchanges accept, managed through ``/_control/keys``.

``POST /_control/keys`` adds (or replaces) one key::

    {"exchange": "binance", "key": "<api key>", "secret": "<secret>",
     "passphrase": "<OKX / Coinbase Exchange passphrase>",
     "permissions": ["read"], "ips": [], "expires_at": 1767225600}

- ``permissions``: a subset of ``read``, ``trade``, ``withdraw`` (default ``["read"]``), shown
  in each exchange's own words in its key-info answer.
- ``ips``: addresses (or CIDR networks) the key is bound to; ``[]`` (default) means not bound.
  A request from any other address gets the exchange's IP error.
- ``expires_at``: optional Unix seconds; after it the exchange's expired-key answer.
- Coinbase: a ``secret`` that is a PEM EC private key (``-----BEGIN EC PRIVATE KEY-----``)
  makes a CDP key for Advanced Trade (``key`` is then the key name
  ``organizations/{org_id}/apiKeys/{key_id}``); any other secret makes an Exchange API key,
  which needs a base64 secret and a ``passphrase``. OKX needs a ``passphrase``; Kraken's secret
  must be base64.

``GET /_control/keys`` lists the keys without secrets; ``DELETE /_control/keys`` with
``{"exchange", "key"}`` revokes one (the exchange then answers as for a deleted key), with no
body removes every key.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.specs import SpecError, check_fields, number, text

__all__ = ["KEY_EXCHANGES", "PERMISSIONS", "KeyStore", "SimKey"]

KEY_EXCHANGES: tuple[str, ...] = ("binance", "bybit", "okx", "coinbase", "kraken")
PERMISSIONS: tuple[str, ...] = ("read", "trade", "withdraw")
_FIELDS = {"exchange", "key", "secret", "passphrase", "permissions", "ips", "expires_at"}
_MAX_KEYS = 1000


@dataclass(slots=True)
class SimKey:
    """One key an exchange accepts.

    Attributes:
        exchange: the exchange name.
        key: the API key (Coinbase CDP: the key name).
        secret: the secret as given (HMAC secret text, base64 text, or a PEM private key).
        passphrase: OKX / Coinbase Exchange passphrase, or None.
        permissions: granted permissions, a subset of :data:`PERMISSIONS`.
        ips: networks the key is bound to; empty = not bound.
        expires_at: Unix seconds after which the key is expired, or None.
        created_at: Unix seconds when it was added.
        revoked: deleted through ``DELETE /_control/keys`` (the exchange answers as for an
            unknown key).
        kind: ``hmac``, or ``cdp`` for a Coinbase Advanced Trade key.
        last_nonce: the last nonce accepted (Kraken), 0 before any.
        secret_bytes: the HMAC key bytes (base64-decoded for Kraken and Coinbase Exchange),
            empty for CDP keys.
    """

    exchange: str
    key: str
    secret: str
    passphrase: str | None
    permissions: frozenset[str]
    ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    expires_at: float | None
    created_at: float
    revoked: bool = False
    kind: str = "hmac"
    last_nonce: int = 0
    secret_bytes: bytes = b""
    public_key: Any = field(default=None, repr=False)
    """Coinbase CDP keys: the P-256 public key (``cryptography``) the JWT is verified with."""

    def ip_allowed(self, client_ip: str) -> bool:
        """Whether ``client_ip`` may use the key (always, when the key is not bound)."""
        if not self.ips:
            return True
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        return any(address in network for network in self.ips)

    def expired(self, now: float) -> bool:
        """Whether the key has passed its expiry at Unix time ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        """The key without its secret or passphrase."""
        return {
            "exchange": self.exchange,
            "key": self.key,
            "kind": self.kind,
            "permissions": sorted(self.permissions),
            "ips": [str(n) if n.num_addresses > 1 else str(n.network_address) for n in self.ips],
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "revoked": self.revoked,
        }


class KeyStore:
    """The keys of every exchange, by ``(exchange, key)``. Loop-thread only."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], SimKey] = {}

    def get(self, exchange: str, key: str) -> SimKey | None:
        """The key (revoked ones included), or None when it was never added."""
        return self._keys.get((exchange, key))

    def keys(self, exchange: str | None = None) -> list[SimKey]:
        """Every key (of one exchange)."""
        return [k for k in self._keys.values() if exchange is None or k.exchange == exchange]

    def add(self, spec: Mapping[str, Any], now: float | None = None) -> SimKey:
        """Validate ``spec`` (see the module docstring) and add or replace the key.

        Raises:
            SpecError: naming the field and the bad value (never a secret's value).
        """
        check_fields(spec, _FIELDS, "key", shown=tuple(sorted(_FIELDS)))
        exchange = spec.get("exchange")
        if exchange not in KEY_EXCHANGES:
            raise SpecError(
                f"exchange: must be one of {', '.join(KEY_EXCHANGES)}, got {exchange!r}"
            )
        key = text(spec, "key", required=True, max_len=200)
        assert key is not None
        secret = spec.get("secret")
        if not isinstance(secret, str) or not secret or len(secret) > 4096:
            raise SpecError("secret: required, a non-empty string of at most 4096 characters")
        passphrase = text(spec, "passphrase", required=False, max_len=200)
        permissions = _permissions(spec.get("permissions", ["read"]))
        ips = _ips(spec.get("ips", []))
        expires_at = number(spec, "expires_at", 0, 1e11, required=False)
        created = time.time() if now is None else now
        sim = SimKey(
            exchange=exchange,
            key=key,
            secret=secret,
            passphrase=passphrase,
            permissions=permissions,
            ips=ips,
            expires_at=None if expires_at is None else float(expires_at),
            created_at=created,
        )
        _prepare(sim)
        if (exchange, key) not in self._keys and len(self._keys) >= _MAX_KEYS:
            raise SpecError(f"key: at most {_MAX_KEYS} keys")
        self._keys[(exchange, key)] = sim
        return sim

    def revoke(self, spec: Mapping[str, Any]) -> SimKey:
        """Revoke the key named by ``{"exchange", "key"}``.

        Raises:
            SpecError: unknown exchange or key.
        """
        check_fields(spec, {"exchange", "key"}, "revoke", shown=("exchange", "key"))
        exchange, key = spec.get("exchange"), spec.get("key")
        found = self._keys.get((str(exchange), str(key)))
        if found is None:
            raise SpecError(f"key: no key {key!r} on exchange {exchange!r}")
        found.revoked = True
        return found

    def clear(self) -> None:
        """Remove every key."""
        self._keys.clear()

    def to_json(self) -> list[dict[str, Any]]:
        """Every key, without secrets, sorted by exchange and key."""
        return [k.to_json() for k in sorted(self._keys.values(), key=lambda k: (k.exchange, k.key))]


def _permissions(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise SpecError(f"permissions: a list of {', '.join(PERMISSIONS)}, got {value!r}")
    unknown = [p for p in value if p not in PERMISSIONS]
    if unknown:
        raise SpecError(
            f"permissions: unknown {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(PERMISSIONS)})"
        )
    return frozenset(value)


def _ips(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(value, list) or len(value) > 100:
        raise SpecError(f"ips: a list of at most 100 addresses ([] = not bound), got {value!r}")
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise SpecError(f"ips: not an IP address or network: {item!r}") from None
    return tuple(networks)


def _prepare(sim: SimKey) -> None:
    """Check the secret's form for the exchange and derive what verification needs."""
    if sim.exchange == "coinbase" and sim.secret.lstrip().startswith("-----BEGIN"):
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            private = load_pem_private_key(sim.secret.encode(), password=None)
        except (ValueError, TypeError):
            raise SpecError("secret: not a readable PEM private key") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
            private.curve, ec.SECP256R1
        ):
            raise SpecError("secret: a Coinbase CDP key must be an EC P-256 (ES256) key")
        sim.kind = "cdp"
        sim.public_key = private.public_key()
        return
    if sim.exchange in ("okx", "coinbase") and sim.passphrase is None:
        raise SpecError(f"passphrase: required for {sim.exchange} keys")
    if sim.exchange in ("kraken", "coinbase"):
        try:
            sim.secret_bytes = base64.b64decode(sim.secret, validate=True)
        except (binascii.Error, ValueError):
            raise SpecError(f"secret: {sim.exchange} secrets are base64") from None
    else:
        sim.secret_bytes = sim.secret.encode()
