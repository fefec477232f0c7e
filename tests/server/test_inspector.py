"""The web inspector at ``/``: served by a real ``selfalign serve`` and used in a real browser.

The browser is Debian's ``chromium`` driven by Playwright. Without it these tests skip, except where
``SELFALIGN_REQUIRE_BROWSER=1`` (CI, set by .ci/run), which turns a missing browser into a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from fake_upstream import Fault
from processes import free_port, stop, wait_ready
from middleware.errors import ConfigError
from middleware.options import DEFAULT_MIN_RELEVANCE
from middleware.retrieval.formats import FORMATS
from middleware.retrieval.strategies import STRATEGIES
from middleware.server import ServerConfig, ServerThread, load_config
from middleware.server.inspector import ASSETS

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "inspector.png"
CHROMIUM = os.environ.get("SELFALIGN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
KEY = "sk-inspector-test-7f3a"
# HTML in every place the page shows data: the user's message, a profile statement, the model's answer.
MESSAGE_HTML = '<img src=x onerror="window.__xss=1;alert(1)">Is it ever justifiable to cheat on taxes?'
STATEMENT_HTML = '<b id="bold">Cheating on taxes</b> is never justifiable<img src=x onerror="alert(2)">.'
REPLY_HTML = '<script>alert(3)</script><img src=x onerror="alert(4)"> Paying taxes <i>matters</i>.'


# ------------------------------------------------------------------------------------- processes


@contextlib.contextmanager
def serve(*args: str, key: str | None = None, ready_s: float = 60) -> Iterator[str]:
    """``selfalign serve ARGS`` on a free loopback port; yields its root URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SELFALIGN_API_KEY"}
    if key:
        env["SELFALIGN_API_KEY"] = key
    proc = subprocess.Popen([sys.executable, "-m", "middleware", "serve", "--port", str(port), "--log-level",
                             "warning", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/health/readiness", proc, ready_s)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def html_profile(tmp_path_factory) -> Path:
    """A config registering a profile whose statements hold HTML."""
    folder = tmp_path_factory.mktemp("inspector")
    (folder / "me.yaml").write_text(
        "description: <em>my</em> values\nstatements:\n"
        f"  - text: '{STATEMENT_HTML}'\n    category: Ethical Values\n"
        "  - text: I value honesty above all.\n", encoding="utf-8")
    (folder / "selfalign.yaml").write_text("profiles:\n  me: ./me.yaml\n", encoding="utf-8")
    return folder / "selfalign.yaml"


@pytest.fixture(scope="module")
def fake_serve(upstream, html_profile) -> Iterator[str]:
    """The proxy in front of the scripted upstream, with the HTML profile registered."""
    with serve("--model", "openai/fake", "--api-base", upstream.url, "--country", "ro",
               "--config", str(html_profile)) as url:
        yield url


# --------------------------------------------------------------------------------------- browser


def _browser_missing() -> str | None:
    if not os.path.isfile(CHROMIUM):
        return f"{CHROMIUM} not found: apt-get install chromium (or set SELFALIGN_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install the pinned version from requirements/lock.txt"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    problem = _browser_missing()
    if problem:
        if os.environ.get("SELFALIGN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SELFALIGN_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 800}, color_scheme="light")
        context.set_default_timeout(30_000)
        yield context
        context.close()


@pytest.fixture
def page(browser):
    """A fresh tab; every dialog (alert, confirm) it opens is recorded and dismissed."""
    tab = browser.new_page()
    tab.dialogs = []

    def on_dialog(dialog) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    yield tab
    tab.close()


def ask(page, message: str, target: str | None = None, k: int | None = None, max_tokens: int | None = None,
        compare: bool = False) -> None:
    page.wait_for_selector("#app:not([hidden])")
    page.fill("#message", message)
    if target:
        page.select_option("#target", target)
    if k is not None:
        page.fill("#k", str(k))
    if max_tokens is not None:
        page.fill("#max-tokens", str(max_tokens))
    page.set_checked("#compare", compare)
    page.click("#send")


def wait_answer(page, panel: str, timeout: float = 60_000) -> str:
    # Locator waits: the page's Content-Security-Policy forbids the eval behind wait_for_function.
    page.locator(f"#{panel} .meta", has_text=re.compile("^done")).wait_for(timeout=timeout)
    return page.text_content(f"#{panel} .text")


def demonstration_rows(page) -> list[list[str]]:
    page.wait_for_selector("#demos:not([hidden]) tbody tr")
    return [[td.text_content() for td in tr.query_selector_all("td")] for tr in page.query_selector_all("#demos tbody tr")]


# ---------------------------------------------------------------------------- without a browser


def test_page_and_assets_are_served_with_a_strict_policy(upstream):
    with ServerThread(ServerConfig(model="openai/fake", api_base=upstream.url, country="ro", port=0,
                                   api_key=KEY)) as server:
        root = f"http://127.0.0.1:{server.port}"
        for path, (_, media_type) in ASSETS.items():
            r = httpx.get(root + path)  # no key: the page holds no data; its API calls need the key
            assert r.status_code == 200 and r.headers["content-type"] == media_type
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY"
        page = httpx.get(root + "/").text
        assert "/inspector/inspector.js" in page and "http" not in page.replace("http-equiv", "")  # nothing remote
        assert httpx.get(root + "/v1/selfalign/options").status_code == 401
        missing = httpx.get(root + "/inspector/../app.py")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        # The Host/Origin guard covers the page like every other route.
        assert httpx.get(root + "/", headers={"Host": "evil.example"}).status_code == 403
        foreign = httpx.get(root + "/inspector/inspector.js", headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403


def test_the_page_never_writes_data_as_markup():
    # The browser tests below check what happens; this keeps the sinks out of the code altogether.
    from importlib.resources import files

    script = files("middleware.server.inspector").joinpath("inspector.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_options_listing(upstream, html_profile):
    config = load_config(html_profile).with_overrides(model="openai/fake", api_base=upstream.url, country="ro",
                                                      port=0)
    with ServerThread(config) as server:
        data = httpx.get(f"http://127.0.0.1:{server.port}/v1/selfalign/options").json()
    assert {"id": "ROU", "name": "Romania"} in data["country"]
    assert [s["id"] for s in data["strategy"]] == list(STRATEGIES)
    assert data["k"] == {"minimum": 1, "maximum": 100, "default": 5}
    assert data["min_relevance"] == {"minimum": 0, "maximum": 1, "default": DEFAULT_MIN_RELEVANCE}
    assert [f["id"] for f in data["format"]] == list(FORMATS) and all(f["description"] for f in data["format"])
    assert data["profile"][0]["id"] == "me" and data["profile"][0]["statements"] == 2
    assert {"id": "en", "name": "English"} in data["language"]
    assert data["default"]["country"] == "ROU"  # as the listed ids, whatever spelling the server was given


def test_no_ui_turns_the_page_off(upstream):
    with serve("--model", "openai/fake", "--api-base", upstream.url, "--no-ui") as url:
        for path in ASSETS:
            r = httpx.get(url + path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert httpx.get(url + "/v1/models").status_code == 200
    with ServerThread(ServerConfig(model="openai/fake", api_base=upstream.url, port=0, ui=False)) as server:
        assert httpx.get(f"http://127.0.0.1:{server.port}/").status_code == 404


def test_ui_config_key(tmp_path):
    (tmp_path / "off.yaml").write_text("ui: false\n")
    assert load_config(tmp_path / "off.yaml").ui is False
    (tmp_path / "bad.yaml").write_text("ui: sometimes\n")
    with pytest.raises(ConfigError, match="ui must be true or false"):
        load_config(tmp_path / "bad.yaml")


# ------------------------------------------------------------------------------ in the browser


def test_everything_shown_is_escaped(page, upstream, fake_serve):
    upstream.set(reply=REPLY_HTML)
    try:
        page.goto(fake_serve + "/")
        ask(page, MESSAGE_HTML, target="profile:me", k=5, compare=True)
        rows = demonstration_rows(page)
        assert STATEMENT_HTML in [row[-1] for row in rows]
        assert wait_answer(page, "aligned") == REPLY_HTML
        assert wait_answer(page, "unaligned") == REPLY_HTML
        assert STATEMENT_HTML in page.text_content("#system")
        assert "<em>my</em> values" in page.text_content("#target")
    finally:
        upstream.set(reply="Hello from the fake upstream, one word at a time.")
    # Shown as text: no element was made from the data, no handler ran, no dialog opened.
    assert page.evaluate("document.querySelectorAll('img, script:not([src]), b, i, em').length") == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []
    # The message reached the model as typed, after the profile's statements.
    sent = [r.body for r in upstream.chat_requests if r.body.get("messages", [{}])[-1].get("content") == MESSAGE_HTML]
    aligned = [b for b in sent if b["messages"][0]["role"] == "system"]
    assert aligned and STATEMENT_HTML in aligned[-1]["messages"][0]["content"]
    assert any(b["messages"][0]["role"] == "user" for b in sent)  # the unaligned one: no system message


def test_relevance_is_shown_when_the_proxy_reports_it(page, fake_serve):
    page.goto(fake_serve + "/")
    ask(page, "Is it important for women to work?", target="country:ROU")
    demonstration_rows(page)
    page.wait_for_selector("#relevance:not([hidden])")  # the proxy's own decision: a values question
    assert page.text_content("#relevance").startswith("injected: yes — ")

    def with_relevance(route) -> None:
        body = route.fetch().json()
        body["relevance"] = {"inject": False, "score": 0.1234, "threshold": 0.35,
                             "reason": "<b>not</b> about values"}
        route.fulfill(json=body)

    page.route("**/v1/selfalign/demonstrations", with_relevance)
    page.click("#send")
    page.wait_for_selector("#relevance:not([hidden])")
    assert page.text_content("#relevance") == ("injected: no — <b>not</b> about values, "
                                               "score 0.123 vs threshold 0.350")


def test_format_and_min_relevance_are_chosen_in_the_page(page, upstream, fake_serve):
    coding = "Write a Python function that sorts a list of numbers."
    page.goto(fake_serve + "/")
    page.wait_for_selector("#app:not([hidden])")
    assert page.input_value("#format") == "bullets" and float(page.input_value("#min-relevance")) == 0.8
    ask(page, coding, target="country:ROU")
    page.wait_for_selector("#relevance.no")  # the default threshold: a coding question goes through untouched
    assert page.text_content("#relevance").startswith("injected: no — not about values")
    wait_answer(page, "aligned")

    page.select_option("#format", "items")
    page.fill("#min-relevance", "0")
    ask(page, coding, target="country:ROU")
    rows = demonstration_rows(page)
    assert page.text_content("#relevance").startswith("injected: yes — min_relevance is 0")
    assert page.text_content("#system").startswith("How people in Romania answered these survey items")
    assert len(rows) == 5  # 0 leaves nothing out: k statements
    wait_answer(page, "aligned")
    sent = [r.body["messages"] for r in upstream.chat_requests if r.body["messages"][-1]["content"] == coding]
    assert sent[0][0]["role"] == "user"  # the first ask: nothing injected
    assert sent[-1][0]["role"] == "system" and "answered these survey items" in sent[-1][0]["content"]


def test_stop_cancels_the_upstream_call(page, upstream, fake_serve):
    upstream.reset()
    upstream.fail_next(Fault(chunk_delay=0.5))  # a slow stream, still going when Stop is pressed
    page.goto(fake_serve + "/")
    ask(page, "Should people obey the law?", target="country:ROU")
    page.locator("#aligned .text", has_text="Hello").wait_for()
    page.click("#stop")
    page.locator("#aligned .meta", has_text="stopped").wait_for()
    assert page.is_disabled("#stop")
    deadline = time.monotonic() + 10
    while upstream.cancelled < 1 and time.monotonic() < deadline:  # the proxy hung up on the upstream too
        time.sleep(0.05)
    assert upstream.cancelled == 1
    assert len(page.text_content("#aligned .text")) < len("Hello from the fake upstream, one word at a time.")


def test_a_configured_key_is_asked_for_and_kept_out_of_urls(page, upstream):
    requests = []
    page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
    with serve("--model", "openai/fake", "--api-base", upstream.url, "--country", "usa", key=KEY) as url:
        page.goto(url + "/")
        page.wait_for_selector("#auth:not([hidden])")
        assert page.is_hidden("#app")
        page.fill("#key", "wrong-key")
        page.press("#key", "Enter")
        page.locator("#auth-error", has_text="refused").wait_for()
        page.fill("#key", KEY)
        page.click("#auth button[type=submit]")
        ask(page, "Should people obey the law?")
        assert len(demonstration_rows(page)) == 5
        assert wait_answer(page, "aligned").startswith("Hello from the fake upstream")
        assert page.evaluate("sessionStorage.getItem('selfalign.inspector.key')") == KEY
        api = [(u, auth) for u, auth in requests if "/v1/" in u]
        assert {re.sub(r"^http://[^/]+", "", u) for u, _ in api} >= {"/v1/selfalign/options", "/v1/models",
                                                                     "/v1/selfalign/demonstrations",
                                                                     "/v1/chat/completions"}
        assert all(auth == f"Bearer {KEY}" for _, auth in api[-4:])
        page.click("#forget")
        page.wait_for_selector("#auth:not([hidden])")
        assert page.evaluate("sessionStorage.getItem('selfalign.inspector.key')") is None
    assert requests and not any(KEY in u for u, _ in requests)
    assert KEY not in page.url


@pytest.mark.slow
def test_embedded_model_answers_aligned_and_unaligned(page, tmp_path):
    """The README's setup: the proxy in front of the embedded SmolLM2; the screenshot for docs/proxy.md."""
    message = "Is it important for women to work?"
    with serve("--country", "ro", ready_s=300) as url:
        page.goto(url + "/")
        ask(page, message, target="country:ROU", k=3, max_tokens=60, compare=True)
        rows = demonstration_rows(page)
        expected = httpx.post(url + "/v1/selfalign/demonstrations",
                              json={"text": message, "selfalign": {"country": "ROU", "k": 3}}).json()["data"]
        assert [row[2] for row in rows] == [d["probe_id"] for d in expected]
        assert [row[-1] for row in rows] == [d["text"] for d in expected]
        assert [float(row[1]) for row in rows] == pytest.approx([d["score"] for d in expected], abs=0.05)
        aligned = wait_answer(page, "aligned", timeout=240_000)
        unaligned = wait_answer(page, "unaligned", timeout=240_000)
        assert aligned.strip() and unaligned.strip()
        assert f"{len(expected)} demonstrations injected" in page.text_content("#aligned .meta")
        assert "0 demonstrations injected" in page.text_content("#unaligned .meta")
        page.click("#system-details summary")
        # The docs' picture is refreshed on request only, so that a test run leaves the checkout clean.
        shot = SCREENSHOT if os.environ.get("SELFALIGN_UPDATE_DOCS") == "1" else tmp_path / "inspector.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "img/inspector.png" in (ROOT / "docs" / "proxy.md").read_text(encoding="utf-8")
