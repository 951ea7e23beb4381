"""What a user sees when the API says no, and a task that waits: cancel a pending task, a 402 for a key out of
credits, a 400 for a file that is not an image, and a prompt full of markup shown as text. Against a server
whose tasks stay pending (no worker renders them), so nothing here depends on timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.conftest import Server, Tab, api, new_key, sign_in
from tests.e2e.processes import free_port

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIRST = EXAMPLES / "first-frame.jpg"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def _generate(tab: Tab, prompt: str) -> None:
    page = tab.page
    page.get_by_label("First frame").set_input_files(FIRST)
    page.get_by_text("Uploaded (file_", exact=False).wait_for()
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate").click()


def test_cancel_a_pending_task(held: Server, tab: Tab, screenshots: Path) -> None:
    key = new_key(held, credits=50)
    page = tab.page
    sign_in(page, held.base_url, key)
    _generate(tab, "A slow pan to the left")
    page.wait_for_url(f"{held.base_url}/console/tasks/task-unified-*")
    task_id = page.url.rsplit("/", 1)[1]
    assert page.locator(".badge").text_content() == "pending"
    assert page.get_by_role("progressbar").get_attribute("aria-valuenow") == "0"

    page.get_by_role("navigation").get_by_role("link", name="Tasks").click()
    card = page.locator(f"li.task[data-task-id='{task_id}']")
    card.get_by_role("button", name="Cancel").wait_for()
    page.screenshot(path=str(screenshots / "tasks-pending.png"), full_page=True)
    card.get_by_role("button", name="Cancel").click()
    card.get_by_text("request_cancelled", exact=False).wait_for()
    assert card.locator(".badge").text_content() == "failed"
    assert card.get_by_role("button", name="Cancel").count() == 0

    task = api(held, key, "GET", f"/v1/tasks/{task_id}").json()
    assert task["status"] == "failed" and task["error"]["code"] == "request_cancelled"
    credits = api(held, key, "GET", f"/v1/tasks/{task_id}/credits").json()
    assert credits["state"] == "released"
    assert [entry["kind"] for entry in credits["data"]] == ["reserve", "release"]
    page.locator(f"li.task[data-task-id='{task_id}'] a").click()
    page.get_by_text("release", exact=True).wait_for()
    page.screenshot(path=str(screenshots / "task-cancelled.png"), full_page=True)
    tab.assert_clean()


def test_out_of_credits_is_a_402_next_to_generate(held: Server, tab: Tab, screenshots: Path) -> None:
    key = new_key(held, credits=2)  # a 5 s video costs 5
    page = tab.page
    sign_in(page, held.base_url, key)
    page.get_by_text("Not enough credits for this video").wait_for()
    _generate(tab, "A slow pan to the left")
    refusal = page.locator(".submit .field-error")
    refusal.get_by_text("402 insufficient_quota_error", exact=False).wait_for()
    assert "this task costs 5 credits" in refusal.inner_text()
    assert page.url == f"{held.base_url}/console/create", "nothing was created"
    assert api(held, key, "GET", "/v1/tasks").json()["data"] == []
    page.screenshot(path=str(screenshots / "create-402.png"), full_page=True)
    tab.assert_clean()


def test_over_the_rate_limit_is_a_429_next_to_generate(held: Server, tab: Tab) -> None:
    key = new_key(held, credits=50, rpm=1)  # the upload spends the one write a minute; the create is over
    page = tab.page
    sign_in(page, held.base_url, key)
    _generate(tab, "A slow pan to the left")
    refusal = page.locator(".submit .field-error")
    refusal.get_by_text("429 rate_limit_error", exact=False).wait_for()
    assert "Retry after" in refusal.inner_text()
    assert page.url == f"{held.base_url}/console/create"
    tab.assert_clean()


def test_a_file_that_is_not_an_image_is_a_400_next_to_it(
    held: Server, tab: Tab, screenshots: Path, tmp_path: Path
) -> None:
    key = new_key(held, credits=50)
    page = tab.page
    sign_in(page, held.base_url, key)
    fake = tmp_path / "holiday.jpg"
    fake.write_text("these are words, not pixels\n")
    page.get_by_label("First frame").set_input_files(fake)
    error_id = page.get_by_label("First frame").get_attribute("aria-describedby")
    assert error_id is not None
    error = page.locator(f"#{error_id.split()[-1]}")
    error.get_by_text("400 invalid_request_error", exact=False).wait_for()
    assert "file" in error.inner_text()
    page.get_by_label("Prompt").fill("A slow pan")
    page.get_by_role("button", name="Generate").click()
    page.locator(".submit .field-error").get_by_text("was not uploaded", exact=False).wait_for()
    assert api(held, key, "GET", "/v1/tasks").json()["data"] == []
    page.screenshot(path=str(screenshots / "create-400.png"), full_page=True)
    tab.assert_clean()


def test_a_prompt_with_markup_is_shown_as_text(held: Server, tab: Tab, screenshots: Path) -> None:
    key = new_key(held, credits=50)
    page = tab.page
    sign_in(page, held.base_url, key)
    _generate(tab, XSS)
    page.wait_for_url(f"{held.base_url}/console/tasks/task-unified-*")
    prompt = page.locator(".prompt.full")
    prompt.wait_for()
    assert prompt.text_content() == XSS
    assert prompt.locator("script, img").count() == 0
    page.get_by_role("navigation").get_by_role("link", name="Tasks").click()
    listed = page.locator("li.task .prompt").first
    listed.wait_for()
    assert listed.text_content() == XSS
    assert page.locator("main img:not(.thumb), main script").count() == 0
    assert page.evaluate("() => window.__xss") is None
    page.screenshot(path=str(screenshots / "tasks-xss.png"), full_page=True)
    tab.assert_clean()


def test_the_callback_log_and_redeliver(held: Server, tab: Tab, screenshots: Path) -> None:
    """A cancel ends the task and sends its callback; nothing listens at the URL, so the log shows every attempt
    fail, and Redeliver starts a second series with the same webhook-id."""
    key = new_key(held, credits=50)
    page = tab.page
    sign_in(page, held.base_url, key)
    page.get_by_label("Callback URL", exact=True).fill(f"https://127.0.0.1:{free_port()}/hooks/reelgate")
    _generate(tab, "A slow pan to the left")
    page.wait_for_url(f"{held.base_url}/console/tasks/task-unified-*")
    task_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Cancel", exact=True).click()
    log = page.locator(".deliveries")
    # Four attempts, 1, 2 and 4 s apart, then the series is given up.
    log.get_by_text("Attempt 4: failed", exact=False).wait_for(timeout=60_000)
    log.locator("strong", has_text="failed").wait_for()
    assert "connection" in log.inner_text()
    page.screenshot(path=str(screenshots / "task-callbacks.png"), full_page=True)
    page.get_by_role("button", name="Redeliver", exact=True).click()
    log.get_by_text("series 2", exact=False).wait_for()
    deliveries = api(held, key, "GET", f"/v1/tasks/{task_id}/callbacks").json()["data"]
    assert [d["series"] for d in deliveries] == [2, 1]
    assert deliveries[0]["webhook_id"] == deliveries[1]["webhook_id"]
    tab.assert_clean()
