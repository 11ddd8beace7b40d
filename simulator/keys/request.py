"""What a private (signed) endpoint handler sees of one request."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.faults import Fault
from simulator.keys.store import KeyStore

__all__ = ["PrivateRequest"]


@dataclass(slots=True)
class PrivateRequest:
    """One request to a private endpoint, as received.

    Attributes:
        method: ``GET`` or ``POST`` (upper case).
        path: the path without the ``/<exchange>`` prefix (``/sapi/v1/account/apiRestrictions``).
        full_path: the path as received, prefix included (``/coinbase/api/v3/...``).
        raw_query: the query string exactly as received (no ``?``), for byte-exact verification.
        headers: request headers, names lower-cased (last value wins).
        body: the body exactly as received.
        client_ip: the peer's address (``127.0.0.1`` on loopback).
        host: the ``Host`` header.
        keys: the key store.
        key_fault: the exchange's API-key fault (``key_revoked``/``key_expired``/
            ``ip_not_allowed``, optional ``key`` param), or None.
    """

    method: str
    path: str
    full_path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes
    client_ip: str
    host: str
    keys: KeyStore
    key_fault: Fault | None

    def fault_for(self, key: str) -> str | None:
        """The key fault kind that applies to ``key``, or None."""
        fault = self.key_fault
        if fault is None:
            return None
        only = fault.params.get("key")
        return fault.kind if only is None or only == key else None
