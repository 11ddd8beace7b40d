"""Keep secret-looking values of alert labels and annotations out of diagnoses and LLM prompts.

The receiver never holds an exchange key or secret: the API-key alerts carry the key's configured
*name* (the ``key`` label). Labels are set by rules and relabelling we do not control, though, so
before label or annotation text is woven into a rules diagnosis or an LLM prompt:

* a label or annotation whose *name* says it holds a credential (``secret``, ``passphrase``,
  ``password``, ``token``, ``private…``, ``credential``, ``signature``, ``api_key``,
  ``access_key``, ``jwt``) is replaced by :data:`REDACTED`;
* in every other value, each whitespace-separated word that looks like a key or secret is
  replaced: at least :data:`MIN_SECRET_CHARS` characters of the base64/hex alphabet
  (``A-Z a-z 0-9 + / = _ -``) that are either hexadecimal (dashes aside: hex secrets and UUID
  keys) or mix upper case, lower case and digits (base64 and alphanumeric keys, e.g. Binance's
  64-character keys, Kraken's base64 secrets). Names such as ``monitor-binance-2026`` or
  ``ExchangeApiKeyInvalid`` and URLs are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 24

_SECRET_NAME = re.compile(
    r"secret|passphrase|password|passwd|token|private|credential|signature|api_?key|"
    r"access_?key|jwt",
    re.IGNORECASE,
)
_WORD = re.compile(r"\S+")
_ALPHABET = re.compile(rf"[A-Za-z0-9+/=_-]{{{MIN_SECRET_CHARS},}}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_EDGES = "\"'`()[]{}<>,.;:!?"


def looks_secret(word: str) -> bool:
    """True when ``word`` (one token, surrounding punctuation allowed) looks like a key/secret."""
    core = word.strip(_EDGES)
    if not _ALPHABET.fullmatch(core):
        return False
    if _HEX.fullmatch(core.replace("-", "")) and sum(c.isdigit() for c in core) >= 4:
        return True
    classes = (
        any(c.islower() for c in core),
        any(c.isupper() for c in core),
        any(c.isdigit() for c in core),
    )
    return all(classes)


def redact_text(text: str) -> str:
    """``text`` with every secret-looking word (see :func:`looks_secret`) replaced."""
    return _WORD.sub(lambda m: REDACTED if looks_secret(m.group(0)) else m.group(0), text)


def secret_name(name: str) -> bool:
    """True when a label/annotation called ``name`` is meant to hold a credential."""
    return bool(_SECRET_NAME.search(name))


def redact_value(name: str, value: str) -> str:
    """The value of label/annotation ``name`` as it may be shown (see the module docstring)."""
    return REDACTED if secret_name(name) else redact_text(value)


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """Every value of ``values`` through :func:`redact_value` (keys unchanged)."""
    return {name: redact_value(name, value) for name, value in values.items()}
