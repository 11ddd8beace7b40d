"""Validation helpers for the JSON specs of the control API (faults, limits, consume, scenarios).

Every helper reads one field of a decoded JSON object and raises ``error`` (a
:class:`SpecError` subclass chosen by the caller) with a message that starts with the field name
and quotes the bad value, e.g. ``"latency_ms: must be a number between 0 and 600000, got -5"``.
Booleans are never accepted as numbers, and NaN is rejected.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = [
    "SpecError",
    "check_fields",
    "choice",
    "flag",
    "is_number",
    "number",
    "text",
]


class SpecError(ValueError):
    """A control-API spec is invalid; ``str(err)`` names the field and the bad value."""


def is_number(value: Any) -> bool:
    """True for an int or float that is not a bool and not NaN."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def number(
    spec: Mapping[str, Any],
    name: str,
    lo: float,
    hi: float,
    *,
    required: bool,
    default: float | None = None,
    integer: bool = False,
    error: type[SpecError] = SpecError,
    required_msg: str = "required",
) -> Any:
    """Read ``spec[name]`` as a number in ``[lo, hi]`` (an ``int`` if ``integer``).

    Returns:
        The value, or ``default`` if the field is absent and not ``required``.

    Raises:
        error: absent but required (``"<name>: <required_msg>"``), wrong type or out of range.
    """
    if name not in spec:
        if required:
            raise error(f"{name}: {required_msg}")
        return default
    value = spec[name]
    kind = "an integer" if integer else "a number"
    if not is_number(value) or (integer and not float(value).is_integer()):
        raise error(f"{name}: must be {kind}, got {value!r}")
    if not lo <= value <= hi:
        raise error(f"{name}: must be {kind} between {lo:g} and {hi:g}, got {value!r}")
    return int(value) if integer else value


def choice(
    spec: Mapping[str, Any],
    name: str,
    allowed: Collection[Any],
    default: Any,
    *,
    error: type[SpecError] = SpecError,
) -> Any:
    """Read ``spec[name]`` (default ``default``) and require it to be one of ``allowed``
    (compared by type too, so ``True`` does not match ``1``).

    Raises:
        error: the value is not in ``allowed``.
    """
    value = spec.get(name, default)
    if not any(type(value) is type(a) and value == a for a in allowed):
        options = ", ".join(sorted(str(a) for a in allowed))
        raise error(f"{name}: must be one of {options}, got {value!r}")
    return value


def flag(
    spec: Mapping[str, Any], name: str, default: bool, *, error: type[SpecError] = SpecError
) -> bool:
    """Read ``spec[name]`` as a JSON boolean (default ``default``).

    Raises:
        error: the value is not ``true``/``false``.
    """
    value = spec.get(name, default)
    if not isinstance(value, bool):
        raise error(f"{name}: must be true or false, got {value!r}")
    return value


def text(
    spec: Mapping[str, Any],
    name: str,
    *,
    required: bool,
    max_len: int = 500,
    error: type[SpecError] = SpecError,
    required_msg: str = "required",
) -> str | None:
    """Read ``spec[name]`` as a non-empty string of at most ``max_len`` characters.

    Returns:
        The string, or ``None`` if absent and not ``required``.

    Raises:
        error: absent but required, not a string, empty or too long.
    """
    if name not in spec:
        if required:
            raise error(f"{name}: {required_msg}")
        return None
    value = spec[name]
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise error(
            f"{name}: must be a non-empty string of at most {max_len} characters, got {value!r}"
        )
    return value


def check_fields(
    spec: Mapping[str, Any],
    allowed: Collection[str],
    what: str,
    *,
    error: type[SpecError] = SpecError,
    shown: Collection[str] | None = None,
) -> None:
    """Reject any key of ``spec`` not in ``allowed`` so typos do not silently do nothing.

    Args:
        what: what the spec is, for the message (``"fault 'latency'"``, ``"binance limits"``).
        shown: the field names listed in the message (default: ``allowed``).

    Raises:
        error: ``"<field>: unexpected field for <what> (its fields: a, b)"``.
    """
    for name in spec:
        if name not in allowed:
            listed = ", ".join(sorted(shown if shown is not None else allowed)) or "none"
            raise error(f"{name}: unexpected field for {what} (its fields: {listed})")
