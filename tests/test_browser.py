"""The built book, as a reader's browser shows it: headless Chromium over the DevTools protocol.

The book is built (``python -m qmu_core build``'s code path, into a temporary folder, unless
``_build/html`` was built by it from the current sources), served on 127.0.0.1 with
``python -m http.server``, and every page is opened in Debian's Chromium, driven through the
Chrome DevTools Protocol with the ``websocket-client`` package. For each page: HTTP 200 and
a title; every ``<img>`` loaded (``naturalWidth > 0``); where the page holds mathematics,
MathJax has rendered it (``mjx-container`` elements, no ``mjx-merror``); no uncaught
JavaScript exception. Every link that points inside the book must reach a file that the
server returns with status 200, and a ``#fragment`` must name an element of its target.
A screenshot of the resilience chapter (or the first chapter there is) is saved to
``test-artifacts/resilience.png``.

Without Chromium the tests are skipped, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import base64
import html.parser
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from qmu_core import paths
from qmu_core.book.build import build_book, build_is_fresh
from qmu_core.book.registry import CHAPTERS

ARTIFACTS = paths.ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-allow-origins=*",
]
LOAD_TIMEOUT = 60.0
MATH_TIMEOUT = 30.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _find_chromium() -> str | None:
    for cand in (os.environ.get("QMU_CHROMIUM"), "/usr/bin/chromium",
                 shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).exists() and os.access(cand, os.X_OK):
            return cand
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


# --------------------------------------------------------------------------------------
# a minimal DevTools Protocol client


class DevTools:
    def __init__(self, ws_url: str):
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=LOAD_TIMEOUT, suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params):
        self._id += 1
        mid = self._id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float = LOAD_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.ws.settimeout(left)
            try:
                msg = json.loads(self.ws.recv())
            finally:
                self.ws.settimeout(LOAD_TIMEOUT)
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression: str, await_promise: bool = False):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=await_promise)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JavaScript error: {r['exceptionDetails']}")
        return r["result"].get("value")

    def navigate(self, url: str) -> int | None:
        """Open ``url``, wait for its load event; return the document's HTTP status."""
        self.events.clear()
        r = self.call("Page.navigate", url=url)
        if r.get("errorText"):
            raise RuntimeError(f"{url}: {r['errorText']}")
        self.wait_event("Page.loadEventFired")
        status = None
        for ev in self.events:
            if ev["method"] == "Network.responseReceived" and ev["params"].get("type") == "Document":
                status = ev["params"]["response"]["status"]
        return status

    def exceptions(self) -> list[str]:
        return [ev["params"]["exceptionDetails"].get("exception", {}).get("description")
                or ev["params"]["exceptionDetails"].get("text", "")
                for ev in self.events if ev["method"] == "Runtime.exceptionThrown"]

    def close(self):
        self.ws.close()


# --------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def chromium():
    exe = _find_chromium()
    if exe is None:
        msg = ("Chromium not found (/usr/bin/chromium; `apt-get install chromium`, which "
               "`make test` does)")
        if _in_ci():
            pytest.fail(msg + "; under CI the browser test must run")
        pytest.skip(msg)
    return exe


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory):
    """The built book: _build/html when our build made it from the current sources, else a
    fresh build in a temporary folder (the repository's _build is left alone)."""
    if build_is_fresh():
        return paths.BUILD_HTML
    out = tmp_path_factory.mktemp("book")
    return build_book(out, quiet=True)


@pytest.fixture(scope="module")
def site(html_dir):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(html_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if _get(base + "index.html", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = open(profile.parent / "chromium.log", "wb")
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--window-size=1280,900", "about:blank"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        ws_url = None
        while ws_url is None:
            if proc.poll() is not None:
                raise RuntimeError(f"Chromium exited with {proc.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not open its DevTools port; see {log.name}")
            if port_file.exists() and port_file.read_text().strip():
                port = int(port_file.read_text().split()[0])
                try:
                    targets = json.loads(_get(f"http://127.0.0.1:{port}/json/list", 5)[1] or b"[]")
                except (OSError, ValueError):
                    targets = []
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    ws_url = pages[0]["webSocketDebuggerUrl"]
                    break
            time.sleep(0.2)
        dt = DevTools(ws_url)
        for domain in ("Page", "Runtime", "Network"):
            dt.call(f"{domain}.enable")
        dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                deviceScaleFactor=1, mobile=False)
        yield dt
        dt.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _pages(html_dir: Path) -> list[str]:
    skip = ("_static/", "_sources/", "_images/")
    return sorted(
        p.relative_to(html_dir).as_posix()
        for p in html_dir.rglob("*.html")
        if not p.relative_to(html_dir).as_posix().startswith(skip)
    )


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


IMAGES_JS = """
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => (i.complete ? null :
      new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r);
                         setTimeout(r, 15000); }))));
  return imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src);
})()
"""
MATH_JS = """
(() => ({
  math: document.querySelectorAll('.math').length,
  rendered: document.querySelectorAll('mjx-container').length,
  errors: document.querySelectorAll('mjx-merror').length,
  mathjax: !!(window.MathJax && window.MathJax.startup),
}))()
"""
LINKS_JS = "Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
# the prose of a page (paragraphs, list items, table cells), where glued numbers land
PROSE_JS = "Array.from(document.querySelectorAll('main p, main li, main td')).map(e => e.innerText)"
QUOTED_NUMBER = re.compile(r"['\u2018\u2019][-+\u2212]?\d[^'\u2018\u2019]{1,40}['\u2019]")


@pytest.fixture(scope="module")
def visited(html_dir, site, browser):
    """Open every page once; gather what each check needs."""
    report = {}
    for rel in _pages(html_dir):
        url = site + rel
        entry = {"url": url}
        if rel == "index.html":  # jupyter-book's redirect to the root page
            status, body = _get(url)
            entry.update(status=status, title="(redirect)", redirect=body.decode(errors="replace"))
            report[rel] = entry
            continue
        entry["status"] = browser.navigate(url)
        entry["title"] = browser.evaluate("document.title")
        entry["broken_images"] = browser.evaluate(IMAGES_JS, await_promise=True)
        math = browser.evaluate(MATH_JS)
        deadline = time.monotonic() + MATH_TIMEOUT
        while math["math"] and math["rendered"] < math["math"] and time.monotonic() < deadline:
            time.sleep(0.25)
            math = browser.evaluate(MATH_JS)
        entry["math"] = math
        entry["links"] = browser.evaluate(LINKS_JS)
        entry["prose"] = browser.evaluate(PROSE_JS)
        entry["exceptions"] = browser.exceptions()
        report[rel] = entry
    return report


# --------------------------------------------------------------------------------------
# tests


def test_every_chapter_page_is_built(html_dir):
    pages = _pages(html_dir)
    assert "book/intro.html" in pages
    executed = [n for n in CHAPTERS if (paths.BOOK / f"{n}.ipynb").exists()]
    for name in executed:
        assert f"book/{name}.html" in pages, f"chapter {name} is executed but has no page"
        page = (html_dir / "book" / f"{name}.html").read_text()
        assert "Parameters of this execution" in page, f"{name}: no parameters box"


def test_pages_load_with_a_title(visited):
    bad = [f"{rel}: HTTP {e['status']}, title {e['title']!r}" for rel, e in visited.items()
           if e["status"] != 200 or not (e["title"] or "").strip()]
    assert not bad, "pages that did not load:\n" + "\n".join(bad)
    assert "book/intro.html" in visited["index.html"]["redirect"]


def test_images_load(visited):
    bad = [f"{rel}: {src}" for rel, e in visited.items() for src in e.get("broken_images", [])]
    assert not bad, "images that did not load:\n" + "\n".join(bad)


def test_glued_numbers_read_as_plain_text(visited):
    """A glued string must render as its text, not as its Python repr ('0.99 ± 0.01').
    (A quoted single digit is prose: the digits '1' and '9' of the MNIST task.)"""
    bad = [f"{rel}: {m.group(0)!r}" for rel, e in visited.items() for t in e.get("prose", [])
           for m in QUOTED_NUMBER.finditer(t)]
    assert not bad, "quoted values in the prose:\n" + "\n".join(bad[:20])


def test_math_renders(visited):
    assert visited["book/intro.html"]["math"]["math"] > 0, "the introduction has mathematics"
    bad = []
    for rel, e in visited.items():
        m = e.get("math")
        if m and m["math"]:
            if not m["mathjax"]:
                bad.append(f"{rel}: MathJax did not load")
            elif m["rendered"] < m["math"]:
                bad.append(f"{rel}: {m['rendered']} of {m['math']} formulas rendered")
            if m["errors"]:
                bad.append(f"{rel}: {m['errors']} MathJax errors")
    assert not bad, "\n".join(bad)


def test_no_javascript_exceptions(visited):
    bad = [f"{rel}: {x}" for rel, e in visited.items() for x in e.get("exceptions", [])]
    assert not bad, "uncaught JavaScript exceptions:\n" + "\n".join(bad)


def test_internal_links_resolve(visited, site):
    targets: dict[str, set[str]] = {}
    for rel, e in visited.items():
        for href in e.get("links", []):
            if href.startswith(site):
                targets.setdefault(href, set()).add(rel)
    assert targets, "no internal links found"
    pages_cache: dict[str, tuple[int, bytes]] = {}
    bad = []
    for href, sources in sorted(targets.items()):
        doc, _, frag = href.partition("#")
        if doc not in pages_cache:
            pages_cache[doc] = _get(doc)
        status, body = pages_cache[doc]
        where = ", ".join(sorted(sources))
        if status != 200:
            bad.append(f"{href} (HTTP {status}) linked from {where}")
            continue
        if frag and doc.endswith(".html"):
            parser = _Ids()
            parser.feed(body.decode("utf-8", errors="replace"))
            if urllib.parse.unquote(frag) not in parser.ids:
                bad.append(f"{href}: no element with id {frag!r}; linked from {where}")
    assert not bad, "broken internal links:\n" + "\n".join(bad)


def test_screenshot_of_a_chapter(html_dir, site, browser):
    built = [n for n in CHAPTERS if (html_dir / "book" / f"{n}.html").exists()]
    name = "resilience" if "resilience" in built else (built[0] if built else "intro")
    browser.navigate(f"{site}book/{name}.html")
    browser.evaluate(IMAGES_JS, await_promise=True)
    # bring the first figure of the chapter into view, if there is one
    browser.evaluate("(() => { const i = document.querySelector('article figure img, article .cell_output img');"
                     " if (i) i.scrollIntoView({block: 'center'}); })()")
    time.sleep(0.5)
    shot = browser.call("Page.captureScreenshot", format="png")
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / "resilience.png"
    out.write_bytes(base64.b64decode(shot["data"]))
    assert out.stat().st_size > 10_000, "the screenshot is suspiciously small"
