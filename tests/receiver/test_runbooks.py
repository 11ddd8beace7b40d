"""GET /runbooks and /runbooks/<AlertName>: every alert's section of docs/alerts.md as a page."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from receiver.app import create_app
from receiver.runbooks import (
    ALERTS_DOC,
    ALERTS_DOC_PATHS,
    find_alerts_doc,
    make_router,
    render_markdown,
    sections,
)
from tests.receiver.shipped_alerts import rule_alerts, shipped_alertnames
from tests.receiver.test_receiver_app import make_settings


def _client(path: Path) -> TestClient:
    app = FastAPI()
    app.include_router(make_router(path))
    return TestClient(app)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return _client(ALERTS_DOC)


def test_the_receiver_serves_the_runbooks(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as c:
        response = c.get("/runbooks/ExchangeApiDown")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert c.get("/runbooks").status_code == 200
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/runbooks", "/runbooks/{alertname}"} <= set(paths)


@pytest.mark.parametrize("alertname", shipped_alertnames())
def test_every_alert_has_a_runbook_page(client: TestClient, alertname: str) -> None:
    """Every alert of prometheus/rules/ (and the receiver's own) has its page, with its
    meaning and what to do: the link in each notification leads somewhere."""
    response = client.get(f"/runbooks/{alertname}")
    assert response.status_code == 200, response.text
    assert f"<h2>{alertname}</h2>" in response.text
    assert f"<title>{alertname}: exchange-watch runbook</title>" in response.text
    for heading in ("<strong>Meaning</strong>", "<strong>What to do</strong>"):
        assert heading in response.text, f"{alertname}: {heading}"


def test_index_links_every_rule_alert(client: TestClient) -> None:
    response = client.get("/runbooks")
    assert response.status_code == 200
    for alertname in rule_alerts():
        assert f'<a href="runbooks/{alertname}">{alertname}</a>' in response.text


def test_a_page_holds_only_its_own_section(client: TestClient) -> None:
    text = client.get("/runbooks/ExchangeApiDown").text
    assert "<h2>ExchangeEndpointDown</h2>" not in text
    assert "How the alerts work" not in text
    # The "What to do" steps are a list, as on GitHub, not one paragraph.
    assert "<ol>\n<li>Compare exchanges:" in text


@pytest.mark.parametrize("name", ["NoSuchAlert", "How the alerts work", "exchangeapidown"])
def test_unknown_alert_is_404_naming_it(client: TestClient, name: str) -> None:
    response = client.get(f"/runbooks/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert f"<h1>No runbook for {name}</h1>" in response.text


def test_unknown_alert_name_is_escaped(client: TestClient) -> None:
    response = client.get("/runbooks/%3Cimg%20src%3Dx%20onerror%3D%22alert(1)%22%3E")
    assert response.status_code == 404
    assert "<img" not in response.text
    assert "No runbook for &lt;img src=x onerror=&quot;alert(1)&quot;&gt;</h1>" in response.text
    assert "<title>No runbook for &lt;img src=x onerror=&quot;alert(1)&quot;&gt;</title>" in (
        response.text
    )
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_markdown_is_rendered_with_raw_html_escaped(tmp_path: Path) -> None:
    doc = tmp_path / "alerts.md"
    doc.write_text(
        "# Alerts\n\n## How it works\n\nIntro.\n\n"
        "## EvilAlert\n\n"
        "**Meaning** a <b>bold</b> claim & <img src=x onerror=alert(1)>\n"
        "- `<code>` in a code span\n"
        "- [click](javascript:alert(1)) and [docs](https://example.com/?a=1&b=2)\n\n"
        "<script>alert(1)</script>\n\n"
        "```\n<i>fenced</i>\n```\n\n"
        "## NextAlert\n\nNext.\n",
        encoding="utf-8",
    )
    client = _client(doc)
    text = client.get("/runbooks/EvilAlert").text
    body = text.split("<main>", 1)[1]
    assert "<script>" not in body and "<img" not in body and "<b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "a &lt;b&gt;bold&lt;/b&gt; claim &amp; &lt;img src=x onerror=alert(1)&gt;" in body
    assert "<code>&lt;code&gt;</code>" in body
    assert "<pre><code>&lt;i&gt;fenced&lt;/i&gt;\n</code></pre>" in body
    assert "javascript:" not in body
    assert '<a href="https://example.com/?a=1&amp;b=2">docs</a>' in body
    assert "<ul>" in body and "Next." not in body
    assert client.get("/runbooks/How it works").status_code == 404


def test_sections_are_the_alert_headings_only() -> None:
    text = "# T\n\n## How the alerts work\n\nx\n\n## Alpha\n\na\n### Sub\n\ns\n\n## Beta\n\nb\n"
    assert sections(text) == {"Alpha": "## Alpha\n\na\n### Sub\n\ns\n", "Beta": "## Beta\n\nb\n"}


def test_render_markdown_keeps_anchor_and_mail_links_only() -> None:
    out = render_markdown("[a](#x) [b](mailto:o@example.com) [c](benchmarks.md) [d](data:x)")
    assert '<a href="#x">a</a>' in out and '<a href="mailto:o@example.com">b</a>' in out
    assert "<a>c</a>" in out and "<a>d</a>" in out


def test_an_edited_doc_is_served_at_once(tmp_path: Path) -> None:
    doc = tmp_path / "alerts.md"
    doc.write_text("## OneAlert\n\nfirst\n", encoding="utf-8")
    client = _client(doc)
    assert "first" in client.get("/runbooks/OneAlert").text
    doc.write_text("## OneAlert\n\nsecond version\n", encoding="utf-8")
    assert "second version" in client.get("/runbooks/OneAlert").text


def test_missing_doc_is_503_naming_the_file(tmp_path: Path) -> None:
    client = _client(tmp_path / "missing.md")
    for url in ("/runbooks", "/runbooks/ExchangeApiDown"):
        response = client.get(url)
        assert response.status_code == 503
        assert "missing.md cannot be read" in response.text


def test_the_doc_is_looked_up_in_the_checkout_then_the_image(tmp_path: Path) -> None:
    checkout, image = tmp_path / "checkout.md", tmp_path / "image.md"
    assert find_alerts_doc((checkout, image)) == checkout  # neither: the 503 names the first
    image.write_text("## A\n")
    assert find_alerts_doc((checkout, image)) == image
    checkout.write_text("## A\n")
    assert find_alerts_doc((checkout, image)) == checkout
    assert ALERTS_DOC_PATHS[0] == ALERTS_DOC and ALERTS_DOC.is_file()
