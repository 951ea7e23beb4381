"""At phone width (390 px) and from the keyboard alone: sign in without a mouse, reach every control of the
create page with Tab, every control labelled by visible text, and no page wider than the screen."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from reelgate.config import DEFAULT_MODEL
from tests.console.conftest import PHONE, Server, Tab, api, new_key

pytestmark = pytest.mark.slow

FIRST = Path(__file__).resolve().parents[2] / "examples" / "first-frame.jpg"

UNLABELLED = """() => [...document.querySelectorAll('main input, main select, main textarea')]
  .filter((el) => !el.labels
    || ![...el.labels].some((label) => label.offsetParent !== null && label.textContent.trim()))
  .map((el) => el.outerHTML)"""
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def test_phone_width_and_keyboard(running: Server, phone: Tab, screenshots: Path) -> None:
    key = new_key(running, credits=50)
    image = "data:image/jpeg;base64," + base64.b64encode(FIRST.read_bytes()).decode()
    created = api(
        running,
        key,
        "POST",
        "/v1/videos/generations",
        json={"model": DEFAULT_MODEL, "prompt": "A slow zoom in", "image_urls": [image], "aspect_ratio": "9:16"},
    ).json()
    page = phone.page
    page.goto(f"{running.base_url}/console")
    # The key field has the focus from the start, and Enter signs in.
    page.wait_for_function("() => document.activeElement?.labels?.[0]?.textContent === 'API key'")
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.get_by_label("Prompt").wait_for()
    assert page.evaluate(UNLABELLED) == []

    # Tab from the top reaches each control of the form, in order, and Generate last.
    wanted = ["First frame", "Last frame", "Prompt", "Aspect ratio", "Duration", "Model", "Callback URL"]
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        name = page.evaluate(
            "() => { const el = document.activeElement; return el.labels?.[0]?.textContent || el.textContent; }"
        )
        reached.append(name)
        if name == "Generate":
            break
    labelled = [name for name in reached if name in wanted]
    assert labelled == wanted, reached
    assert reached[-1] == "Generate", reached
    page.get_by_label("First frame").set_input_files(FIRST)
    page.locator("canvas.preview").first.wait_for()
    assert page.evaluate(OVERFLOW) <= 0
    page.screenshot(path=str(screenshots / "phone-create.png"), full_page=True)

    deadline = time.monotonic() + 120
    while api(running, key, "GET", f"/v1/tasks/{created['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the task did not complete"
        time.sleep(0.2)
    task_page = f"tasks/{created['id']}"
    pages = [("tasks", "phone-tasks.png"), (task_page, "phone-task.png"), ("account", "phone-account.png")]
    for route, shot in pages:
        page.goto(f"{running.base_url}/console/{route}")
        page.locator("main h1").wait_for()
        page.locator("main .hint", has_text="Loading").first.wait_for(state="detached")
        if route.startswith("tasks/"):
            page.wait_for_function("() => document.querySelector('video')?.readyState >= 1")
        assert page.evaluate(OVERFLOW) <= 0, f"{route} is wider than {PHONE['width']} px"
        assert page.evaluate(UNLABELLED) == []
        page.screenshot(path=str(screenshots / shot), full_page=True)
    phone.assert_clean()
