"""The web console's fixtures: real `reelgate serve` processes, Debian's Chromium driven by Playwright, and a
directory for the screenshots every test leaves behind (REELGATE_CONSOLE_SCREENSHOTS, else a pytest temporary
directory; the log names it).

The servers live for the session; the browser for a module (Playwright's sync API keeps an event loop running in
the test thread while it is open, and the database helpers of tests/conftest.py need that thread's loop free).
Two servers, so that nothing waits on timing: `running` has an in-process worker that renders every task (the
motion engine at a small size); `held` has none, and a worker advertised in the registry stands for a busy one
elsewhere, so its tasks stay pending for as long as a test needs (cancel, refusals, admin).

Playwright's own browser download (`playwright install`) is never used. Without /usr/bin/chromium these tests
skip with the reason; under REELGATE_REQUIRE_SERVICES=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from reelgate.config import Settings
from tests.conftest import (
    CHROMIUM_ARGS,
    advertise_worker,
    make_settings,
    migrate_db,
    settings_env,
    sqlite_backend_at,
)
from tests.e2e.processes import Processes, free_port, ready, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ADMIN_TOKEN = "console-e2e-9f3c1a7b5d2e8046c1b9a3f7d5e2c8b4"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Small frames keep a render short; a short lease makes the heartbeat (a third of it, at most 1 s) publish
# progress often enough that a 5 s video shows the bar at several places on its way.
SHORT_SIDE_PX = 240
LEASE_S = 0.9


@dataclass(frozen=True)
class Server:
    base_url: str
    settings: Settings


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("REELGATE_CONSOLE_SCREENSHOTS")
    directory = Path(given) if given else tmp_path_factory.mktemp("console-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots: {directory}")
    return directory


def _off_loop(work: Callable[[Settings], object], settings: Settings) -> None:
    """Run a database helper (it runs an event loop of its own) in a thread: a browser started earlier in the
    session keeps Playwright's event loop running in this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work, settings).result()


def _serve(directory: Path, *, workers: int, held: bool) -> Iterator[Server]:
    settings = make_settings(
        directory / "home", sqlite_backend_at(directory), motion_short_side_px=SHORT_SIDE_PX, lease_s=LEASE_S
    )
    _off_loop(migrate_db, settings)
    if held:
        _off_loop(advertise_worker, settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**settings_env(settings), "REELGATE_PUBLIC_URL": base_url, "REELGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    processes = Processes(directory)
    try:
        processes.start("serve", ["serve", "--port", str(port), "--workers", str(workers)], env)
        try:
            wait_until(lambda: ready(base_url), 60, "the server to start")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{processes.log('serve')}") from exc
        yield Server(base_url, settings.model_copy(update={"public_url": base_url}))
    finally:
        processes.stop_all()


@pytest.fixture(scope="session")
def running(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Server]:
    """A server whose own worker renders every task."""
    yield from _serve(tmp_path_factory.mktemp("running"), workers=1, held=False)


@pytest.fixture(scope="session")
def held(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Server]:
    """A server whose tasks stay pending: no worker here, one advertised as busy elsewhere."""
    yield from _serve(tmp_path_factory.mktemp("held"), workers=0, held=True)


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tab:
    """A page of a fresh browser context, with what went wrong in it recorded for the test's end."""

    page: Page
    errors: list[str]

    def assert_clean(self) -> None:
        assert not self.errors, f"the console logged errors: {self.errors}"


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    yield from _tab(browser, DESKTOP)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Tab]:
    yield from _tab(browser, PHONE)


def _tab(browser: Browser, viewport: dict[str, int]) -> Iterator[Tab]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))

    def on_console(message: object) -> None:
        kind = getattr(message, "type", "")
        text = getattr(message, "text", "")
        # The browser logs every refused request (a 4xx the test provokes) as a console error; those are
        # the API's answers, shown by the console, not faults of it. A CSP violation or a script error is.
        if kind == "error" and "Failed to load resource" not in text:
            errors.append(f"console: {text}")

    page.on("console", on_console)
    try:
        yield Tab(page, errors)
    finally:
        context.close()


def sign_in(page: Page, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_label("API key", exact=True).fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("button", name="Sign out").wait_for()


def new_key(server: Server, *, credits: float, name: str = "console", **limits: int) -> str:
    """A key on a new account through the admin API (Playwright's sync API keeps an event loop running in this
    thread, so the database helpers of tests/conftest.py, which run one of their own, cannot be used here)."""
    answer = httpx.post(
        f"{server.base_url}/admin/v1/keys",
        json={"name": name, "credits": credits, **limits},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    answer.raise_for_status()
    key: str = answer.json()["key"]
    return key


def api(server: Server, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, f"{server.base_url}{path}", headers=headers, timeout=10, **kwargs)
