"""Per-exchange egress settings of the exporter config: how the exchange's probes, stream, book
snapshots and API-key checks leave the host (:class:`exporter.egress.Route`).

Shape (fields of an exchange in the exporter YAML; all optional)::

    proxy_url: http://proxy.internal:3128      # HTTP CONNECT proxy, no credentials inline
    proxy_url_env: CORP_PROXY_URL              # or: the URL (credentials allowed) from a variable
    proxy_url_file: /run/secrets/proxy_url     # or: from a file (whitespace stripped)
    source_address: 10.0.0.5                   # local IP to bind (to reach the proxy, if any)
    ip_protocol: auto                          # auto | ip4 | ip6
    tls:
      ca_file: /etc/ssl/corp-inspection-ca.pem # trusted CAs instead of the default bundle
      server_name: api.binance.com             # TLS name (SNI and check) if not the URL's host

At most one of ``proxy_url``, ``proxy_url_env`` and ``proxy_url_file``. A proxy URL is
``http://[user:password@]host[:port]`` (port 3128 when omitted; credentials percent-encoded);
credentials are refused inline — they would show in the config dump, in ``ps`` of a templating
step and in version control — and are read from the variable or file at load (and at each
reload) into a :class:`pydantic.SecretStr` that no error, log, metric, dump or ``/status`` shows.
A relative ``proxy_url_file`` or ``ca_file`` is taken relative to the config file's directory,
as for API-key files. ``ca_file`` must load as a PEM CA bundle when the config is loaded.

With a ``source_address`` and ``ip_protocol: auto`` the route uses the address's family (a
socket bound to an IPv4 address cannot reach an IPv6 peer); a ``source_address`` of the other
family than an explicit ``ip4``/``ip6`` is an error.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Protocol
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from exporter.egress import IpProtocol, Route, parse_proxy_url
from exporter.keys.settings import read_secret_file

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_INLINE_CREDENTIALS = (
    "credentials are not allowed inline; put the whole URL in an environment variable "
    "(proxy_url_env) or a file (proxy_url_file)"
)

REDACTED_FIELDS = frozenset({"proxy_url"})
"""Config fields whose values :func:`exporter.config.parse_config` shows only through
:func:`redact_url` in an error."""


def redact_url(value: str) -> str:
    """``value`` with anything before the last ``@`` of its authority replaced by ``***``
    (``http://user:pw@host:3128`` → ``http://***@host:3128``); unchanged without ``@``."""
    scheme, sep, rest = value.partition("://")
    prefix = f"{scheme}://" if sep else ""
    rest = rest if sep else value
    if "@" not in rest:
        return value
    return f"{prefix}***@{rest.rsplit('@', 1)[1]}"


def _has_userinfo(url: str) -> bool:
    _, sep, rest = url.partition("://")
    return "@" in (rest if sep else url)


def _check_proxy_url(value: str) -> str:
    """An inline ``proxy_url``: a valid ``http://host:port`` without credentials."""
    value = value.strip()
    if _has_userinfo(value):
        raise ValueError(_INLINE_CREDENTIALS)
    parse_proxy_url(value)  # ValueError: scheme, host, port, path (nothing secret in it)
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError("must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return value


def _check_source_address(value: str) -> str:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError("must be an IP address (IPv4 or IPv6 literal), not a name") from None
    if address.is_multicast:
        raise ValueError("must be a local unicast address, not a multicast one")
    return str(address)


ProxyUrl = Annotated[str, AfterValidator(_check_proxy_url)]
"""An inline proxy URL (credentials refused)."""

EnvName = Annotated[str, AfterValidator(_check_env_name)]
"""The name of an environment variable."""

SourceAddress = Annotated[str, AfterValidator(_check_source_address)]
"""An IP literal, normalised (``2001:DB8::1`` → ``2001:db8::1``)."""


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context if isinstance(info.context, dict) else {}
    base_dir = context.get("base_dir")
    return Path(base_dir) if base_dir is not None else None


class TlsConfig(BaseModel):
    """TLS trust and name of an exchange's connections (``tls:``).

    Attributes:
        ca_file: PEM bundle of trusted CAs used instead of the default bundle (e.g. the CA of
            a TLS-inspecting proxy); a relative path is taken relative to the config file's
            directory and stored resolved. Checked at load with
            ``ssl.create_default_context(cafile=...)``.
        server_name: the TLS server name (SNI and certificate check) when it differs from the
            URL's host; a DNS name (not an IP address), stored lowercase without a final dot.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: str | None = Field(default=None, min_length=1, max_length=4096)
    server_name: str | None = None

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        location = Path(value)
        base_dir = _base_dir(info)
        if base_dir is not None and not location.is_absolute():
            location = base_dir / location
        if not location.is_file():
            raise ValueError("no such file" if not location.exists() else "not a file")
        try:
            ssl.create_default_context(cafile=str(location))
        except ssl.SSLError as exc:
            reason = exc.reason or type(exc).__name__
            raise ValueError(f"does not load as a PEM CA bundle ({reason})") from None
        except (OSError, ValueError) as exc:
            detail = getattr(exc, "strerror", None) or type(exc).__name__
            raise ValueError(f"cannot read it as a CA bundle ({detail})") from None
        return str(location)

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().rstrip(".").lower()
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            raise ValueError("must be a DNS name; TLS sends no IP address as server name")
        if not _DNS_NAME.match(name):
            raise ValueError("must be a DNS name (letters, digits, hyphens and dots)")
        return name


class EgressFields(Protocol):
    """The egress fields of an exchange's config (:class:`exporter.config.ExchangeConfig`)."""

    @property
    def proxy_url(self) -> str | None: ...
    @property
    def proxy_url_env(self) -> str | None: ...
    @property
    def proxy_url_file(self) -> str | None: ...
    @property
    def source_address(self) -> str | None: ...
    @property
    def ip_protocol(self) -> IpProtocol: ...
    @property
    def tls(self) -> TlsConfig | None: ...


def egress_route(
    fields: EgressFields, environ: Mapping[str, str], base_dir: Path | None = None
) -> Route:
    """Build the exchange's :class:`Route`, reading a proxy URL from the environment or a file.

    Args:
        fields: the exchange's validated egress fields.
        environ: where ``proxy_url_env`` is looked up (``os.environ`` at load).
        base_dir: the config file's directory (relative ``proxy_url_file``).

    Raises:
        ValueError: two proxy sources given, the variable unset or empty, the file unreadable
            or empty, the URL invalid, or ``source_address`` not of ``ip_protocol``'s family;
            the message names the field and the variable, file or address, never the URL
            read nor any credential.
    """
    given = [
        name
        for name in ("proxy_url", "proxy_url_env", "proxy_url_file")
        if getattr(fields, name) is not None
    ]
    if len(given) > 1:
        raise ValueError(
            f"{' and '.join(given)}: give at most one of proxy_url, proxy_url_env and "
            "proxy_url_file"
        )
    secret: SecretStr | None = None
    if fields.proxy_url is not None:
        secret = SecretStr(fields.proxy_url)
    elif fields.proxy_url_env is not None:
        name = fields.proxy_url_env
        value = environ.get(name, "").strip()
        if not value:
            raise ValueError(f"proxy_url_env: environment variable {name} is not set or empty")
        secret = SecretStr(_secret_proxy_url(value, f"proxy_url_env: environment variable {name}"))
    elif fields.proxy_url_file is not None:
        path = fields.proxy_url_file
        value = read_secret_file("proxy_url_file", path, base_dir).strip()
        secret = SecretStr(_secret_proxy_url(value, f"proxy_url_file: {path}"))
    protocol = fields.ip_protocol
    source = fields.source_address
    if source is not None:
        version = ipaddress.ip_address(source).version
        family: IpProtocol = "ip6" if version == 6 else "ip4"
        if protocol == "auto":
            protocol = family
        elif protocol != family:
            raise ValueError(
                f"ip_protocol: {protocol} does not match source_address {source} "
                f"(an IPv{version} address)"
            )
    tls = fields.tls
    return Route(
        proxy_url=secret,
        source_address=source,
        ip_protocol=protocol,
        ca_file=tls.ca_file if tls is not None else None,
        server_name=tls.server_name if tls is not None else None,
    )


def _secret_proxy_url(url: str, where: str) -> str:
    """Check a proxy URL read from a variable or file; errors quote none of it."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme != "http" or not url.lower().startswith("http://"):
        raise ValueError(f"{where}: not a proxy URL of the form http://[user:password@]host:port")
    try:
        parse_proxy_url(url)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return url
