"""Exporter config loading: valid files load; every error names file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config
from exporter.durations import parse_duration
from exporter.scheduler import build_targets

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), (3, 3.0), ("1.5s", 1.5)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "s5", "5s junk", "-1s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("name", ["exporter.yml", "exporter.demo.yml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(ROOT / "deploy" / name)
    names = {e.name for e in config.exchanges}
    assert names == {"binance", "bybit", "okx", "coinbase", "kraken"}
    targets = build_targets(config)
    assert {t.endpoint.name for t in targets if t.exchange == "binance"} == {
        "ping",
        "time",
        "status",
        "ticker",
        "orderbook",
    }


def test_demo_config_expands_simulator_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMULATOR_URL", "http://127.0.0.1:1234")
    config = load_config(ROOT / "deploy" / "exporter.demo.yml")
    assert config.exchanges[0].base_url == "http://127.0.0.1:1234/binance"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return path


VALID = """
exchanges:
  - name: binance
    profile: binance
    base_url: https://api.binance.com
    interval: 5s
    timeout: 3s
"""


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (("interval: 5s", "interval: fast"), r"exchanges\[0\]\.interval: .*'fast'"),
        (
            ("profile: binance", "profile: binanse"),
            r"exchanges\[0\]\.profile: unknown profile.*"
            r"'binanse'",
        ),
        (("timeout: 3s", "timeout: 9s"), r"exchanges\[0\]: .*timeout 9s must not exceed interval"),
        (
            ("base_url: https://api.binance.com", "base_url: api.binance.com"),
            r"exchanges\[0\]\.base_url: .*'api\.binance\.com'",
        ),
        (("name: binance", "name: Binance!"), r"exchanges\[0\]\.name: .*'Binance!'"),
        (("timeout: 3s", "timeout: 3s\n    colour: red"), r"exchanges\[0\]\.colour: Extra inputs"),
        (
            ("timeout: 3s", "timeout: 3s\n    endpoints: [ping, candles]"),
            r"exchanges\[0\]\.endpoints: .*candles not offered by profile 'binance'",
        ),
    ],
)
def test_config_errors_name_file_field_value(
    tmp_path: Path, replace: tuple[str, str], expected: str
) -> None:
    path = _write(tmp_path, VALID.replace(*replace))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_config_error_for_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "exchanges: [\n"))
    with pytest.raises(ConfigError, match="exchanges: List should have at least 1 item"):
        load_config(_write(tmp_path, "exchanges: []\n"))


def test_duplicate_exchange_names_rejected(tmp_path: Path) -> None:
    text = VALID + VALID.split("exchanges:\n", 1)[1]
    with pytest.raises(ConfigError, match="'binance' is used twice"):
        load_config(_write(tmp_path, text))


def test_unset_env_reference_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VAR_EW", raising=False)
    path = _write(tmp_path, VALID.replace("https://api.binance.com", "${NO_SUCH_VAR_EW}"))
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_EW is not set"):
        load_config(path)


def test_demo_and_real_configs_share_one_schedule() -> None:
    real = load_config(ROOT / "deploy" / "exporter.yml")
    demo = load_config(ROOT / "deploy" / "exporter.demo.yml")
    for a, b in zip(real.exchanges, demo.exchanges, strict=True):
        assert a.name == b.name and a.profile == b.profile
        assert a.endpoint_plan() == b.endpoint_plan()
        assert a.weight_budget == b.weight_budget


BUDGET = """
exchanges:
  - name: okx
    profile: okx
    base_url: https://www.okx.com
    interval: 5s
    timeout: 3s
"""


def test_budget_rejects_a_schedule_over_the_documented_limit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, BUDGET))
    message = str(info.value)
    assert "exchanges[0]:" in message
    assert "GET /api/v5/system/status" in message and "[OKX-STATUS]" in message
    assert "budget is 10%" in message and "status every 50s" in message


def test_budget_accepts_per_endpoint_interval_or_larger_budget(tmp_path: Path) -> None:
    slow_status = BUDGET + "    endpoints: [time, {name: status, interval: 50s}, ticker]\n"
    config = load_config(_write(tmp_path, slow_status))
    plan = {p.name: (p.interval, p.timeout) for p in config.exchanges[0].endpoint_plan()}
    assert plan == {"time": (5.0, 3.0), "status": (50.0, 3.0), "ticker": (5.0, 3.0)}
    assert load_config(_write(tmp_path, BUDGET + "    weight_budget: 1.0\n"))


def test_binance_budget_counts_request_weight(tmp_path: Path) -> None:
    # depth (weight 5) every 50 ms = 6000 weight/min: 100 % of REQUEST_WEIGHT, over 10 %.
    text = VALID.replace("interval: 5s", "interval: 50ms").replace("timeout: 3s", "timeout: 50ms")
    text += "    endpoints: [orderbook]\n"
    with pytest.raises(ConfigError, match=r"uses 6e\+03 of 6000 per 60s \(REQUEST_WEIGHT"):
        load_config(_write(tmp_path, text))


def test_endpoint_timeout_must_fit_its_interval(tmp_path: Path) -> None:
    text = VALID + "    endpoints: [{name: time, interval: 2s, timeout: 3s}]\n"
    with pytest.raises(ConfigError, match="endpoint time: timeout 3s must not exceed interval 2s"):
        load_config(_write(tmp_path, text))


def test_every_problem_is_one_line(tmp_path: Path) -> None:
    text = VALID.replace("interval: 5s", "interval: soon").replace("profile: binance", "profile: x")
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text + "max_concurrency: 0\n"))
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(str(tmp_path)) for line in lines)


# -- markets and the websocket block (issue 13) -------------------------------------------------


@pytest.fixture
def fake_dialects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every exchange profile streams with the fake dialect (tests/exporter/test_ws_fakes.py)."""
    from test_ws_fakes import FakeDialect

    from exporter.streams import dialects

    for name in ("binance", "bybit", "okx", "coinbase", "kraken"):
        monkeypatch.setitem(dialects.DIALECTS, name, FakeDialect)


@pytest.mark.parametrize(
    ("profile", "market", "symbol"),
    [
        ("binance", "ETH/USDT", "ETHUSDT"),
        ("bybit", "BTC/USDT", "BTCUSDT"),
        ("okx", "ETH/USDT", "ETH-USDT"),
        ("coinbase", "ETH/USD", "ETH-USD"),
        ("kraken", "BTC/USD", "XBTUSD"),
        ("kraken", "ETH/USD", "ETHUSD"),
    ],
)
def test_markets_map_to_each_profiles_rest_symbol(
    tmp_path: Path, profile: str, market: str, symbol: str
) -> None:
    text = VALID.replace("profile: binance", f"profile: {profile}").replace(
        "interval: 5s", f"interval: 60s\n    weight_budget: 0.5\n    markets: [{market}, SOL/USD]"
    )
    exchange = load_config(_write(tmp_path, text)).exchanges[0]
    assert exchange.effective_symbol() == symbol
    urls = [t.url for t in build_targets(load_config(_write(tmp_path, text)))]
    assert any(symbol in url for url in urls)


def test_profiles_default_market_spells_their_default_symbol() -> None:
    from exporter.profiles import PROFILES

    for name, profile in PROFILES.items():
        if profile.default_market is not None:
            assert profile.rest_symbol(profile.default_market) == profile.default_symbol, name


def test_symbol_wins_over_markets_for_rest(tmp_path: Path) -> None:
    text = VALID.replace(
        "interval: 5s", "interval: 5s\n    symbol: BNBBTC\n    markets: [ETH/USDT]"
    )
    assert load_config(_write(tmp_path, text)).exchanges[0].effective_symbol() == "BNBBTC"


@pytest.mark.parametrize(
    ("markets", "expected"),
    [
        ("[btc/usdt]", r"exchanges\[0\]\.markets: .*'btc/usdt' is not a unified market"),
        ("[BTCUSDT]", r"'BTCUSDT' is not a unified market"),
        ("[BTC/USDT, BTC/USDT]", r"lists BTC/USDT twice"),
        ("[]", r"markets: .*must not be empty"),
        ("[" + ", ".join(f"A{i}/USD" for i in range(21)) + "]", r"at most 20"),
    ],
)
def test_market_errors_name_field_and_value(tmp_path: Path, markets: str, expected: str) -> None:
    text = VALID.replace("interval: 5s", f"interval: 5s\n    markets: {markets}")
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, text))


def test_generic_profile_refuses_markets_clearly(tmp_path: Path) -> None:
    text = """
exchanges:
  - name: venue
    profile: generic
    base_url: https://api.example.com
    endpoints: [{name: time, path: /time}]
    markets: [BTC/USDT]
"""
    with pytest.raises(ConfigError, match=r"markets: profile 'generic' has no symbol mapping"):
        load_config(_write(tmp_path, text))


@pytest.mark.usefixtures("fake_dialects")
def test_websocket_block_resolves_defaults(tmp_path: Path) -> None:
    text = VALID.replace(
        "interval: 5s", "interval: 5s\n    markets: [BTC/USDT, ETH/USDT]\n    websocket: {}"
    )
    config = load_config(_write(tmp_path, text))
    plan = config.stream_plans()["binance"]
    assert plan.url == "ws://127.0.0.1:9"  # the dialect's default_url
    assert [c.value for c in plan.channels] == ["ticker", "trades", "book"]
    assert plan.markets == ("BTC/USDT", "ETH/USDT")
    assert dict(plan.stale_after) == dict.fromkeys(plan.channels, 1.0)
    text = VALID.replace(
        "interval: 5s",
        "interval: 5s\n    websocket: {url: 'wss://h:9443', channels: [book], "
        "markets: [ETH/USDT], stale_after: {book: 250ms}}",
    )
    plan = load_config(_write(tmp_path, text)).stream_plans()["binance"]
    assert (plan.url, plan.markets, plan.stale_after) == (
        "wss://h:9443",
        ("ETH/USDT",),
        (("book", 0.25),),
    )
    http = VALID.replace("interval: 5s", "interval: 5s\n    websocket: {url: 'http://sim:8000/x'}")
    assert load_config(_write(tmp_path, http)).stream_plans()["binance"].url == "ws://sim:8000/x"
    off = VALID.replace("interval: 5s", "interval: 5s\n    websocket: {enabled: false}")
    assert load_config(_write(tmp_path, off)).stream_plans() == {}
    assert load_config(_write(tmp_path, VALID)).stream_plans() == {}


@pytest.mark.usefixtures("fake_dialects")
@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("{channels: [ticker, candles]}", r"exchanges\[0\]\.websocket\.channels\[1\]: .*'candles'"),
        ("{url: 'ftp://x.example'}", r"websocket\.url: must be a ws:// or wss:// URL.*ftp"),
        ("{url: 'wss://'}", r"websocket\.url: must be a ws:// or wss:// URL with a host"),
        ("{stale_after: {ticker: 0s}}", r"websocket\.stale_after\.ticker: .*greater than 0"),
        ("{stale_after: {book: 5s}, channels: [ticker]}", r"websocket\.stale_after: book not sub"),
        ("{markets: [BTC-USDT]}", r"websocket\.markets: .*'BTC-USDT' is not a unified market"),
        ("{colour: red}", r"websocket\.colour: Extra inputs"),
        ("{channels: []}", r"websocket\.channels: .*must not be empty"),
    ],
)
def test_websocket_errors_name_file_field_value(tmp_path: Path, block: str, expected: str) -> None:
    path = _write(tmp_path, VALID.replace("interval: 5s", f"interval: 5s\n    websocket: {block}"))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_websocket_on_a_profile_without_a_dialect_is_an_error(tmp_path: Path) -> None:
    text = """
exchanges:
  - name: venue
    profile: generic
    base_url: https://api.example.com
    endpoints: [{name: time, path: /time}]
    websocket: {url: 'wss://stream.example.com'}
"""
    with pytest.raises(ConfigError, match=r"websocket: profile 'generic' has no WebSocket dialect"):
        load_config(_write(tmp_path, text))
