"""`/docs` and `/redoc` render in a real browser with the network off: a real `reelgate serve`, Debian's
Chromium driven by Playwright, and every request to a host other than 127.0.0.1 blocked and recorded.

ReDoc 2 renders a "Redocly" logo from cdn.redoc.ly whatever its options say; the pages' Content-Security-Policy
stops it inside the browser, before any network I/O. The test allows exactly that one refused reference, so a
new outside dependency in a later version of the assets fails it even if the policy would stop it too.

Playwright's own browser download (`playwright install`) is never used: the browser is the system's. Without
/usr/bin/chromium the test skips with the reason; under REELGATE_REQUIRE_SERVICES=1 (CI) it fails instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import CHROMIUM_ARGS, make_settings, migrate_db, settings_env, sqlite_backend_at
from tests.e2e.processes import Processes, free_port, ready, wait_until

pytestmark = pytest.mark.slow

# Schemes that never reach a network: the pages' inline data and ReDoc's worker blobs.
LOCAL_SCHEMES = {"data", "blob", "about"}
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def server(tmp_path: Path, chromium: Path) -> Iterator[str]:
    settings = make_settings(tmp_path / "home", sqlite_backend_at(tmp_path))
    migrate_db(settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**settings_env(settings), "REELGATE_PUBLIC_URL": base_url}
    processes = Processes(tmp_path)
    try:
        processes.start("serve", ["serve", "--port", str(port), "--workers", "0"], env)
        try:
            wait_until(lambda: ready(base_url), 30, "the server to start")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{processes.log('serve')}") from exc
        yield base_url
    finally:
        processes.stop_all()


def test_api_docs_render_with_the_network_off(server: str, chromium: Path, tmp_path: Path) -> None:
    from playwright.sync_api import Request, Route, sync_playwright

    blocked: list[str] = []
    seen: list[str] = []
    page_errors: list[str] = []
    console: list[str] = []
    failed: dict[str, str] = {}

    def local(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in LOCAL_SCHEMES or parts.hostname == "127.0.0.1"

    def guard(route: Route) -> None:
        if local(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def record(request: Request) -> None:
        seen.append(request.url)

    def record_failure(request: Request) -> None:
        failed[request.url] = request.failure or ""

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            # On the context, so every page and worker it opens is guarded, not only the first page.
            context.route("**/*", guard)
            context.on("request", record)
            context.on("requestfailed", record_failure)
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))

            answer = page.goto(f"{server}/docs", wait_until="networkidle")
            assert answer is not None and answer.ok, answer
            operation = page.locator(".opblock[id$='-createVideoGeneration']")
            operation.wait_for(state="visible", timeout=30_000)
            assert "/v1/videos/generations" in operation.inner_text()
            swagger_png = tmp_path / "swagger-ui.png"
            page.screenshot(path=str(swagger_png))

            answer = page.goto(f"{server}/redoc", wait_until="networkidle")
            assert answer is not None and answer.ok, answer
            summary = page.locator("h2", has_text="Create an image-to-video task").first
            summary.wait_for(state="visible", timeout=30_000)
            redoc_png = tmp_path / "redoc.png"
            page.screenshot(path=str(redoc_png))
        finally:
            browser.close()

    print(f"screenshots: {swagger_png} {redoc_png}")
    # What the pages' Content-Security-Policy refused (ReDoc's logo), for the log.
    print("browser console:", *console, sep="\n  ")
    assert not blocked, f"the docs pages tried to reach the outside: {blocked}"
    outside = {url for url in seen if not local(url)}
    assert outside <= {REDOC_LOGO}, f"the docs pages reference the outside: {outside}"
    refused = {url: failed.get(url, "not refused") for url in outside}
    assert all("csp" in why.lower() for why in refused.values()), f"not refused by the page's policy: {refused}"
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in seen), seen
    assert any(url.endswith("/docs/assets/redoc.standalone.js") for url in seen), seen
    assert not page_errors, page_errors
