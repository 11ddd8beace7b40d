"""The per-exchange egress config (proxy, source address, IP protocol, TLS trust and name): the
Route it builds, the errors that name file, field and value, the proxy credentials that never
show (errors, repr, the config dump, ``/status``, logs), and the route reaching every consumer —
REST probes, the stream plan, book snapshots, key checks and the connectivity canary."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from exporter import cli
from exporter.canary import ConnectivityCanary
from exporter.cli import effective_config
from exporter.config import ConfigError, ExporterConfig, load_config, parse_config
from exporter.config_egress import redact_url
from exporter.egress import DIRECT, Route
from exporter.http11 import ProbeClient, Response
from exporter.keys.manager import KeyManager
from exporter.keys.transport import RouteTransport
from exporter.metrics import ExporterMetrics
from exporter.profiles import get_profile
from exporter.runtime import ExporterRuntime
from exporter.scheduler import ProbeScheduler, _TargetKey, build_targets
from exporter.state import ExchangeState
from exporter.streams.snapshot import SnapshotFetcher
from testsupport.connect_proxy import ConnectProxy
from testsupport.tls_certs import CertChain, make_chain

USER = "desk-bot"
PASSWORD = "pr0xy-S3cret/9f@2a"
ENCODED = "pr0xy-S3cret%2F9f%402a"
SECRET_URL = f"http://{USER}:{ENCODED}@proxy.corp.example:8080"
SECRETS = (PASSWORD, ENCODED, "pr0xy-S3cret")
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
KEY_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def config_data(**egress: Any) -> dict[str, Any]:
    return {
        "exchanges": [
            {
                "name": "binance",
                "profile": "binance",
                "base_url": "https://api.binance.example",
                "websocket": {"url": "wss://stream.binance.example:9443"},
                **egress,
            }
        ]
    }


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORP_PROXY_URL", SECRET_URL)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> CertChain:
    return make_chain(tmp_path_factory.mktemp("tls"), leaf_days=90, intermediate_days=30)


# --- valid configs build the right Route ------------------------------------------------------


def test_without_egress_fields_the_route_is_direct() -> None:
    exchange = parse_config(config_data()).exchanges[0]
    assert exchange.route == DIRECT
    assert exchange.route.describe() == "direct"


def test_inline_proxy_url_without_credentials() -> None:
    route = parse_config(config_data(proxy_url=" http://10.0.0.2:3128 ")).exchanges[0].route
    assert route.proxy_url == SecretStr("http://10.0.0.2:3128")
    assert route.describe() == "proxy http://10.0.0.2:3128"


def test_proxy_url_env_carries_credentials_as_a_secret(proxy_env: None) -> None:
    exchange = parse_config(config_data(proxy_url_env="CORP_PROXY_URL")).exchanges[0]
    route = exchange.route
    assert isinstance(route.proxy_url, SecretStr)
    assert route.proxy_url.get_secret_value() == SECRET_URL
    proxy = route.proxy
    assert proxy is not None and proxy.authorization is not None
    assert (proxy.host, proxy.port) == ("proxy.corp.example", 8080)
    assert route.describe() == "proxy http://proxy.corp.example:8080"
    assert exchange.proxy_url_env == "CORP_PROXY_URL"


def test_proxy_url_file_is_stripped_and_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "proxy").write_text(f"  {SECRET_URL}\n\n")
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(config_data(proxy_url_file="secrets/proxy")))
    route = load_config(path).exchanges[0].route
    assert route.proxy_url is not None
    assert route.proxy_url.get_secret_value() == SECRET_URL


def test_a_changed_proxy_file_is_read_again_on_reload(tmp_path: Path) -> None:
    secret = tmp_path / "proxy"
    secret.write_text("http://10.0.0.2:3128")
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(config_data(proxy_url_file=str(secret))))
    runtime = ExporterRuntime(path, load_config(path), ExporterMetrics())
    secret.write_text("http://10.0.0.3:3128")
    assert runtime.reload()["status"] == "ok"
    assert runtime.status()["exchanges"]["binance"]["egress"] == "proxy http://10.0.0.3:3128"


@pytest.mark.parametrize(
    ("egress", "source", "protocol"),
    [
        ({"source_address": "10.0.0.5"}, "10.0.0.5", "ip4"),  # auto takes the source's family
        ({"source_address": "2001:DB8::5"}, "2001:db8::5", "ip6"),
        ({"source_address": "10.0.0.5", "ip_protocol": "ip4"}, "10.0.0.5", "ip4"),
        ({"ip_protocol": "ip6"}, None, "ip6"),
        ({"ip_protocol": "auto"}, None, "auto"),
    ],
)
def test_source_address_and_ip_protocol(
    egress: dict[str, str], source: str | None, protocol: str
) -> None:
    route = parse_config(config_data(**egress)).exchanges[0].route
    assert (route.source_address, route.ip_protocol) == (source, protocol)


def test_tls_ca_file_resolves_relative_to_the_config(tmp_path: Path, chain: CertChain) -> None:
    (tmp_path / "corp-ca.pem").write_bytes(chain.ca_file.read_bytes())
    path = tmp_path / "exporter.yml"
    tls = {"ca_file": "corp-ca.pem", "server_name": "API.Binance.example."}
    path.write_text(yaml.safe_dump(config_data(proxy_url="http://10.0.0.2:3128", tls=tls)))
    route = load_config(path).exchanges[0].route
    assert route.ca_file == str(tmp_path / "corp-ca.pem")
    assert route.server_name == "api.binance.example"
    assert route == Route(
        proxy_url=SecretStr("http://10.0.0.2:3128"),
        ca_file=str(tmp_path / "corp-ca.pem"),
        server_name="api.binance.example",
    )


# --- invalid values: file, field and value ----------------------------------------------------


@pytest.mark.parametrize(
    ("egress", "location", "problem"),
    [
        ({"proxy_url": "https://proxy:3128"}, "exchanges[0].proxy_url", "'https://proxy:3128'"),
        ({"proxy_url": "http://proxy:99999"}, "exchanges[0].proxy_url", "'http://proxy:99999'"),
        ({"proxy_url": "http://proxy:3128/x"}, "exchanges[0].proxy_url", "no path"),
        ({"proxy_url_env": "corp-proxy"}, "exchanges[0].proxy_url_env", "'corp-proxy'"),
        ({"proxy_url_env": "NOT_SET_ANYWHERE"}, "exchanges[0]", "NOT_SET_ANYWHERE is not set"),
        ({"proxy_url_file": "/no/such/file"}, "exchanges[0]", "proxy_url_file: cannot read"),
        (
            {"proxy_url": "http://p:1", "proxy_url_env": "CORP_PROXY_URL"},
            "exchanges[0]",
            "proxy_url and proxy_url_env: give at most one",
        ),
        ({"source_address": "proxy.corp"}, "exchanges[0].source_address", "'proxy.corp'"),
        ({"source_address": "224.0.0.1"}, "exchanges[0].source_address", "multicast"),
        (
            {"source_address": "::1", "ip_protocol": "ip4"},
            "exchanges[0]",
            "ip_protocol: ip4 does not match source_address ::1",
        ),
        ({"ip_protocol": "ipv6"}, "exchanges[0].ip_protocol", "'ipv6'"),
        ({"tls": {"ca_file": "/no/such/ca.pem"}}, "exchanges[0].tls.ca_file", "'/no/such/ca.pem'"),
        ({"tls": {"server_name": "10.1.2.3"}}, "exchanges[0].tls.server_name", "'10.1.2.3'"),
        ({"tls": {"server_name": "bad_name"}}, "exchanges[0].tls.server_name", "'bad_name'"),
        ({"tls": {"verify": False}}, "exchanges[0].tls.verify", "Extra inputs"),
    ],
)
def test_errors_name_file_field_and_value(
    proxy_env: None, egress: dict[str, Any], location: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_data(**egress), "exporter.yml")
    message = str(info.value)
    assert message.startswith(f"exporter.yml: {location}: "), message
    assert problem in message
    assert_no_secret(message)


def test_a_ca_file_that_is_no_ca_bundle_is_refused_without_its_content(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text(f"-----BEGIN CERTIFICATE-----\n{PASSWORD}\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError) as info:
        parse_config(config_data(tls={"ca_file": str(bogus)}), "exporter.yml")
    message = str(info.value)
    assert message.startswith("exporter.yml: exchanges[0].tls.ca_file: ")
    assert "PEM CA bundle" in message and str(bogus) in message
    assert_no_secret(message)


@pytest.mark.parametrize(
    "url",
    [
        SECRET_URL,
        f"http://{USER}:{PASSWORD}@proxy.corp.example:8080",  # unencoded: / and @ in it
        f"{USER}:{ENCODED}@proxy.corp.example:8080",  # no scheme
        f"http://:{ENCODED}@proxy.corp.example",
    ],
)
def test_inline_credentials_are_refused_and_never_echoed(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_data(proxy_url=url), "exporter.yml")
    message = str(info.value)
    assert message.startswith("exporter.yml: exchanges[0].proxy_url: credentials are not allowed")
    assert "proxy_url_env" in message and "proxy_url_file" in message
    assert "***@proxy.corp.example" in message  # the value, redacted
    assert_no_secret(message)


def test_inline_credentials_from_an_env_reference_are_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROXY_PASSWORD", ENCODED)
    path = tmp_path / "exporter.yml"
    data = config_data(proxy_url="http://desk-bot:${PROXY_PASSWORD}@proxy.corp.example:8080")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "credentials are not allowed inline" in str(info.value)
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    "value",
    [
        "   ",
        f"https://{USER}:{ENCODED}@proxy:1",
        f"{PASSWORD}:{ENCODED}",
        f"http://{USER}:{ENCODED}@proxy:1/path",
        f"http://{USER}:{ENCODED}@proxy:port",
        PASSWORD,
    ],
)
def test_bad_env_and_file_values_never_show_the_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CORP_PROXY_URL", value)
    with pytest.raises(ConfigError) as info:
        parse_config(config_data(proxy_url_env="CORP_PROXY_URL"), "exporter.yml")
    message = str(info.value)
    assert message.startswith("exporter.yml: exchanges[0]: proxy_url_env: environment variable")
    assert "CORP_PROXY_URL" in message
    assert_no_secret(message)
    secret = tmp_path / "proxy"
    secret.write_text(value)
    with pytest.raises(ConfigError) as info:
        parse_config(config_data(proxy_url_file=str(secret)), "exporter.yml")
    message = str(info.value)
    assert message.startswith("exporter.yml: exchanges[0]: proxy_url_file: ")
    assert str(secret) in message
    assert_no_secret(message)


def test_redact_url() -> None:
    assert redact_url("http://u:p@h:1") == "http://***@h:1"
    assert redact_url("http://u:p/q@r@h") == "http://***@h"
    assert redact_url("u:p@h") == "***@h"
    assert redact_url("http://h:1") == "http://h:1"


# --- the secret never shows -------------------------------------------------------------------


def test_secret_is_not_in_repr_dump_or_check_config(
    proxy_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(proxy_url_env="CORP_PROXY_URL", source_address="10.0.0.5")
    config = parse_config(data)
    assert_no_secret(repr(config))
    assert_no_secret(str(config))
    assert_no_secret(repr(config.exchanges[0].route))
    dumped = effective_config(config)
    assert_no_secret(json.dumps(dumped))
    assert dumped["exchanges"][0]["proxy_url_env"] == "CORP_PROXY_URL"
    assert dumped["exchanges"][0]["source_address"] == "10.0.0.5"
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["--config", str(path), "--check-config"]) == 0
    printed = capsys.readouterr().out
    assert "proxy_url_env: CORP_PROXY_URL" in printed
    assert_no_secret(printed)
    reloaded = yaml.safe_load(printed.split("\n", 1)[1])  # the dump loads again
    assert parse_config(reloaded).exchanges[0].route == config.exchanges[0].route


def test_status_shows_the_route_without_credentials(proxy_env: None, tmp_path: Path) -> None:
    path = tmp_path / "exporter.yml"
    tls = {"server_name": "api.binance.example"}
    path.write_text(yaml.safe_dump(config_data(proxy_url_env="CORP_PROXY_URL", tls=tls)))
    runtime = ExporterRuntime(path, load_config(path), ExporterMetrics())
    status = runtime.status()
    assert status["exchanges"]["binance"]["egress"] == (
        "proxy http://proxy.corp.example:8080, server_name api.binance.example"
    )
    assert_no_secret(json.dumps(status))
    assert_no_secret(runtime.metrics.render().decode())


def test_logs_never_show_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CORP_PROXY_URL", SECRET_URL)
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(config_data(proxy_url_env="CORP_PROXY_URL")))
    with caplog.at_level(logging.DEBUG):
        runtime = ExporterRuntime(path, load_config(path), ExporterMetrics())
        assert runtime.reload()["status"] == "ok"
        monkeypatch.setenv("CORP_PROXY_URL", SECRET_URL + "/bad-path")  # reload refused
        failed = runtime.reload()
        path.write_text(yaml.safe_dump(config_data(proxy_url=SECRET_URL)))
        inline = runtime.reload()
    assert failed["status"] == inline["status"] == "error"
    assert "config reload failed" in caplog.text
    assert_no_secret(caplog.text)
    assert_no_secret(json.dumps([failed, inline]))


# --- the route reaches every consumer ---------------------------------------------------------


def test_build_targets_and_the_stream_plan_carry_the_route(proxy_env: None) -> None:
    config = parse_config(config_data(proxy_url_env="CORP_PROXY_URL", ip_protocol="ip4"))
    route = config.exchanges[0].route
    targets = build_targets(config)
    assert targets and all(target.route == route for target in targets)
    plans = config.stream_plans()
    assert plans["binance"].route == route
    direct = parse_config(config_data())
    assert all(target.route == DIRECT for target in build_targets(direct))
    assert direct.stream_plans()["binance"].route == DIRECT


def test_a_changed_route_restarts_the_probe_and_the_stream(proxy_env: None) -> None:
    before = parse_config(config_data(proxy_url="http://10.0.0.2:3128"))
    after = parse_config(config_data(proxy_url="http://10.0.0.3:3128"))
    same = parse_config(config_data(proxy_url="http://10.0.0.2:3128"))
    assert _TargetKey.of(build_targets(before)[0]) != _TargetKey.of(build_targets(after)[0])
    assert _TargetKey.of(build_targets(before)[0]) == _TargetKey.of(build_targets(same)[0])
    assert before.stream_plans() != after.stream_plans()  # StreamManager restarts on a change
    assert before.stream_plans() == same.stream_plans()


def test_book_snapshots_go_on_the_route() -> None:
    route = Route(proxy_url=SecretStr("http://10.0.0.2:3128"))
    routes: list[Route] = []

    class Client:
        async def get(
            self, url: str, timeout: float, max_body_bytes: int, route: Route = DIRECT
        ) -> Response:
            routes.append(route)
            return Response(200, {}, b'{"lastUpdateId": 1}', 0.01)

    config = parse_config(config_data())
    state = ExchangeState.for_config(config.exchanges[0])
    fetcher = SnapshotFetcher(
        Client(),  # type: ignore[arg-type]
        state,
        get_profile("binance"),
        "https://api.binance.example",
        3.0,
        1 << 20,
        route=route,
    )
    assert asyncio.run(fetcher.fetch("/api/v3/depth", {"symbol": "BTCUSDT"}, 1.0)) == {
        "lastUpdateId": 1
    }
    assert routes == [route]


def test_canary_resolves_the_proxy_host_in_the_routes_family() -> None:
    data = config_data(proxy_url="http://127.0.0.1:3128")
    data["exchanges"][0]["base_url"] = "https://name-that-never-resolves.invalid"
    data["exchanges"].append(
        {
            "name": "bybit",
            "profile": "bybit",
            "base_url": "https://api.bybit.example",
            "proxy_url": "http://127.0.0.1:3128",
            "ip_protocol": "ip6",  # 127.0.0.1 has no IPv6 address
        }
    )
    config = parse_config(data)
    metrics = ExporterMetrics()
    canary = ConnectivityCanary(ProbeClient("t"), metrics)
    canary.configure(config)

    def dns_up(name: str) -> float | None:
        return metrics.registry.get_sample_value("exchange_exporter_dns_up", {"exchange": name})

    assert asyncio.run(canary.check()) is True
    assert dns_up("binance") == 1  # the proxy's address, not the exchange's name
    assert dns_up("bybit") == 0


def test_key_checks_use_a_client_per_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BN_KEY", KEY)
    monkeypatch.setenv("BN_SECRET", KEY_SECRET)
    keys = [{"name": "monitor", "key_env": "BN_KEY", "secret_env": "BN_SECRET"}]

    def config(**egress: Any) -> ExporterConfig:
        return parse_config(config_data(api_keys=keys, **egress))

    async def go() -> None:
        first = config(proxy_url="http://127.0.0.1:9", source_address="127.0.0.1")
        scheduler = ProbeScheduler(first, ExporterMetrics(), streams=False, keys=False)
        manager = KeyManager(scheduler.metrics, scheduler.states)
        try:
            assert manager.apply(first)["started"] == 1
            prober = manager.prober("binance", "monitor")
            assert prober is not None
            assert isinstance(prober.client._transport, RouteTransport)
            assert list(manager._clients) == [first.exchanges[0].route]
            assert manager.apply(first) == {"kept": 1, "started": 0, "stopped": 0}
            direct = config()
            assert manager.apply(direct) == {"kept": 0, "started": 1, "stopped": 0}
            prober = manager.prober("binance", "monitor")
            assert prober is not None
            assert not isinstance(prober.client._transport, RouteTransport)
            assert list(manager._clients) == [DIRECT]
        finally:
            await manager.stop()
        assert manager._clients == {}

    asyncio.run(go())


# --- end to end: the key-check transport through a real CONNECT proxy ------------------------


async def _tls_server(chain: CertChain) -> tuple[asyncio.Server, list[Any]]:
    peers: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername"))
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = b'{"ok":true}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=chain.server_context())
    return server, peers


@pytest.mark.e2e
def test_key_transport_goes_through_the_proxy_with_its_credentials(
    chain: CertChain, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> tuple[list[Any], int, int]:
        server, _ = await _tls_server(chain)
        port = server.sockets[0].getsockname()[1]
        async with ConnectProxy(credentials=(USER, PASSWORD)) as proxy:
            route = Route(
                proxy_url=SecretStr(proxy.url_with(USER, ENCODED)),
                source_address="127.0.0.2",
                ip_protocol="ip4",
                ca_file=str(chain.ca_file),
                server_name="localhost",  # the URL names 127.0.0.1
            )
            async with httpx.AsyncClient(transport=RouteTransport(route)) as client:
                response = await client.get(f"https://127.0.0.1:{port}/key")
            tunnels = list(proxy.tunnels)
        server.close()
        return tunnels, response.status_code, port

    with caplog.at_level(logging.DEBUG):
        tunnels, status, port = asyncio.run(go())
    assert status == 200
    assert len(tunnels) == 1
    assert tunnels[0].client[0] == "127.0.0.2"  # bound to the source address
    assert tunnels[0].target == f"127.0.0.1:{port}"
    assert tunnels[0].authorization is not None and tunnels[0].status == 200
    assert_no_secret(caplog.text)


@pytest.mark.e2e
def test_key_transport_errors_are_httpx_errors_without_credentials(chain: CertChain) -> None:
    async def go() -> list[Exception]:
        server, _ = await _tls_server(chain)
        port = server.sockets[0].getsockname()[1]
        errors: list[Exception] = []
        async with ConnectProxy(credentials=(USER, "other")) as proxy:
            routes = [
                Route(proxy_url=SecretStr(proxy.url_with(USER, ENCODED))),  # 407
                Route(ca_file=None),  # the test CA is not trusted by default
                Route(ip_protocol="ip6"),  # 127.0.0.1 is IPv4
            ]
            for route in routes:
                async with httpx.AsyncClient(transport=RouteTransport(route)) as client:
                    try:
                        await client.get(f"https://127.0.0.1:{port}/key")
                    except httpx.HTTPError as exc:
                        errors.append(exc)
        server.close()
        return errors

    errors = asyncio.run(go())
    assert [type(e) for e in errors] == [httpx.ConnectError] * 3
    for error in errors:
        assert_no_secret(str(error))
    assert "407" in str(errors[0])
    assert "TLS" in str(errors[1])


def test_the_production_doc_example_loads(tmp_path: Path, chain: CertChain) -> None:
    """docs/production.md's corporate-proxy example, its secrets in files beside it."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "production.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "proxy_url_file" in b)
    (tmp_path / "corp_proxy_url").write_text(SECRET_URL + "\n")
    (tmp_path / "corp_inspection_ca.pem").write_bytes(chain.ca_file.read_bytes())
    path = tmp_path / "exporter.yml"
    path.write_text(block.replace("/run/secrets/", f"{tmp_path}/"))
    route = load_config(path).exchanges[0].route
    assert route.describe() == (
        f"proxy http://proxy.corp.example:8080, source 10.20.0.15, ip4, "
        f"ca_file {tmp_path}/corp_inspection_ca.pem"
    )
