"""The alert runbooks as web pages: ``GET /runbooks`` and ``GET /runbooks/<AlertName>``.

As shipped, every alert's ``runbook_url`` annotation points here (``config.runbook_url`` in
``prometheus/thresholds.yml``), so the link in a notification opens the alert's section of
``docs/alerts.md`` (what it means, its likely causes, what to do) from the receiver itself, on a
fresh deployment, without a wiki.

A runbook is the section under ``## <AlertName>`` up to the next heading of level 1 or 2,
rendered with Python-Markdown (tables and fenced code). Raw HTML in the Markdown is escaped,
not passed through, and links keep only http(s), mailto and ``#anchor`` targets (a relative
link would point into docs/, which is not served). The file is read again when it changes.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit
from xml.etree.ElementTree import Element

import markdown
from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor

ALERTS_DOC = Path(__file__).resolve().parents[1] / "docs" / "alerts.md"
"""docs/alerts.md of the checkout the receiver runs from."""
ALERTS_DOC_PATHS = (ALERTS_DOC, Path("/etc/exchange-watch/alerts.md"))
"""Where the receiver looks for docs/alerts.md: its checkout (native runs, the tests), then the
image's config directory (the container, where the package is installed without docs/)."""


def find_alerts_doc(paths: tuple[Path, ...] = ALERTS_DOC_PATHS) -> Path:
    """The first of ``paths`` that exists (the first when none does)."""
    return next((path for path in paths if path.is_file()), paths[0])


_HEADING = re.compile(r"^(?P<level>#{1,2})[ \t]+(?P<title>.*?)[ \t#]*$", re.M)
_ALERT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+\.)[ \t]")
_SAFE_SCHEMES = {"http", "https", "mailto"}
_HEADERS = {
    # The pages need no script and load nothing: only their own inline style.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}
_HTML_RESPONSE = {"content": {"text/html": {"schema": {"type": "string"}}}}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5}code{background:#f2f2f2;padding:0 .2em}pre{background:#f2f2f2;"
    "padding:.5em;overflow:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
    "padding:.2em .5em}"
)


def sections(text: str) -> dict[str, str]:
    """Alert name → the Markdown of its section, heading included.

    A section is an ``## <AlertName>`` heading whose title is one identifier (so ``## How the
    alerts work`` is not one) and what follows it up to the next heading of level 1 or 2.
    """
    headings = list(_HEADING.finditer(text))
    found: dict[str, str] = {}
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        title = heading["title"]
        if heading["level"] == "##" and _ALERT_NAME.fullmatch(title):
            end = following.start() if following else len(text)
            found.setdefault(title, text[heading.start() : end].strip() + "\n")
    return found


class _ListsAfterParagraphs(Preprocessor):
    """Starts a list where a line opens one right under a paragraph line, as GitHub does
    (docs/alerts.md writes ``**What to do**`` and the first item on the next line); plain
    Markdown would read the items as part of the paragraph."""

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        for line in lines:
            previous = out[-1] if out else ""
            if (
                _LIST_ITEM.match(line)
                and previous.strip()
                and not _LIST_ITEM.match(previous)
                and not previous.startswith((" ", "\t"))
            ):
                out.append("")
            out.append(line)
        return out


class _SafeLinks(Treeprocessor):
    """Drops ``href``/``src`` values other than http(s), mailto and ``#anchor``."""

    def run(self, root: Element) -> None:
        for element in root.iter():
            for attribute in ("href", "src"):
                value = element.get(attribute)
                if value is not None and not _safe_target(value):
                    del element.attrib[attribute]


def _safe_target(value: str) -> bool:
    if value.startswith("#"):
        return True  # an anchor on the page
    try:
        scheme = urlsplit(value.strip()).scheme.lower()
    except ValueError:
        return False
    # Relative links point into docs/ (e.g. benchmarks.md), which is not served here.
    return scheme in _SAFE_SCHEMES


def render_markdown(text: str) -> str:
    """HTML of ``text``: Markdown with tables and fenced code; raw HTML escaped; safe links."""
    md = markdown.Markdown(extensions=["tables", "fenced_code"], output_format="html")
    # Raw HTML blocks and inline tags become text (escaped) instead of markup.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    md.preprocessors.register(_ListsAfterParagraphs(md), "lists_after_paragraphs", 20)
    md.treeprocessors.register(_SafeLinks(md), "safe_links", 0)
    return md.convert(text)


def page(title: str, body_html: str, *, back: bool = True) -> str:
    """A whole HTML document: ``title`` (escaped here) around ``body_html`` (already HTML)."""
    nav = '<nav><a href="../runbooks">All runbooks</a></nav>\n' if back else ""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{nav}<main>\n{body_html}\n</main>\n</body>\n</html>\n"
    )


@lru_cache(maxsize=4)
def _rendered(path: Path, mtime_ns: int, size: int) -> dict[str, str]:
    """Every runbook of ``path`` rendered; cached per version of the file."""
    text = path.read_text(encoding="utf-8")
    return {name: render_markdown(section) for name, section in sections(text).items()}


def runbooks(path: Path = ALERTS_DOC) -> dict[str, str] | None:
    """Alert name → its runbook as HTML, or ``None`` when ``path`` cannot be read."""
    try:
        stat = path.stat()
        return _rendered(path, stat.st_mtime_ns, stat.st_size)
    except (OSError, UnicodeDecodeError):
        return None


def _unavailable(path: Path) -> HTMLResponse:
    body = f"<h1>Runbooks unavailable</h1>\n<p>{html.escape(str(path))} cannot be read.</p>"
    return HTMLResponse(page("Runbooks unavailable", body), 503, headers=_HEADERS)


def make_router(path: Path | None = None) -> APIRouter:
    """The ``/runbooks`` routes, serving the runbooks of ``path`` (default: looked up in
    :data:`ALERTS_DOC_PATHS` on every request)."""
    router = APIRouter(tags=["runbooks"])

    def doc() -> Path:
        return path if path is not None else find_alerts_doc()

    @router.get("/runbooks", response_class=HTMLResponse, responses={503: _HTML_RESPONSE})
    def runbook_index() -> HTMLResponse:
        """Every alert that has a runbook, linked to it."""
        source = doc()
        found = runbooks(source)
        if found is None:
            return _unavailable(source)
        items = "\n".join(
            f'<li><a href="runbooks/{quote(name)}">{html.escape(name)}</a></li>'
            for name in sorted(found)
        )
        body = f"<h1>exchange-watch alert runbooks</h1>\n<ul>\n{items}\n</ul>"
        return HTMLResponse(page("Alert runbooks", body, back=False), headers=_HEADERS)

    @router.get(
        "/runbooks/{alertname}",
        response_class=HTMLResponse,
        responses={404: _HTML_RESPONSE, 503: _HTML_RESPONSE},
    )
    def runbook(alertname: Annotated[str, PathParam(max_length=200)]) -> HTMLResponse:
        """The runbook of one alert: its section of docs/alerts.md; 404 for an unknown alert."""
        source = doc()
        found = runbooks(source)
        if found is None:
            return _unavailable(source)
        if alertname not in found:
            name = html.escape(alertname)
            body = (
                f"<h1>No runbook for {name}</h1>\n<p>{html.escape(source.name)} has no section "
                f"<code>## {name}</code>.</p>"
            )
            return HTMLResponse(page(f"No runbook for {alertname}", body), 404, headers=_HEADERS)
        title = f"{alertname}: exchange-watch runbook"
        return HTMLResponse(page(title, found[alertname]), headers=_HEADERS)

    return router
