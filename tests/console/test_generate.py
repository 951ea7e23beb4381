"""Sign in, generate from the two example frames, watch the progress bar move, play the video: the whole
path of a new user, in real Chromium against a real `reelgate serve` whose own worker renders the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from reelgate.media.framing import crop_box, output_size
from reelgate.media.video import read_frames
from tests.console.conftest import SHORT_SIDE_PX, Server, Tab, new_key, sign_in

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIRST = EXAMPLES / "first-frame.jpg"
LAST = EXAMPLES / "last-frame.jpg"

# Every value the bar shows, recorded in the page as it changes (a poll from the test could miss some).
RECORD_PROGRESS = """() => {
  window.__progress = [];
  const seen = (bar) => window.__progress.push(Number(bar.getAttribute('aria-valuenow')));
  document.querySelectorAll('[role=progressbar]').forEach(seen);
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.type === 'attributes' && change.target.getAttribute('role') === 'progressbar') seen(change.target);
      for (const node of change.addedNodes || []) {
        if (node.nodeType !== 1) continue;
        if (node.getAttribute('role') === 'progressbar') seen(node);
        node.querySelectorAll('[role=progressbar]').forEach(seen);
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow']});
}"""


def psnr(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def test_sign_in_generate_watch_the_progress_and_play(
    running: Server, tab: Tab, screenshots: Path, tmp_path: Path
) -> None:
    key = new_key(running, credits=100)
    page = tab.page
    page.goto(f"{running.base_url}/")
    assert page.url == f"{running.base_url}/console", "GET / leads to the console"
    page.screenshot(path=str(screenshots / "sign-in.png"))
    sign_in(page, running.base_url, key)
    assert page.url == f"{running.base_url}/console/create"

    # The names the issue gives the controls, exactly: users' automation finds them so.
    page.get_by_label("First frame", exact=True).set_input_files(FIRST)
    page.get_by_label("Last frame", exact=True).set_input_files(LAST)
    page.get_by_label("Prompt", exact=True).fill("A slow dolly in as the light warms")
    page.get_by_label("Aspect ratio", exact=True).select_option("16:9")
    page.get_by_label("Duration", exact=True).select_option("5")
    price = page.locator("output.price")
    price.get_by_text("Price: 5 credits").wait_for()
    frame_w, frame_h = output_size("16:9", SHORT_SIDE_PX)
    assert f"{frame_w}\N{MULTIPLICATION SIGN}{frame_h} on motion" in price.inner_text()
    page.get_by_text("Uploaded (file_", exact=False).nth(1).wait_for()

    # The previews are the engine's crop of each image at the engine's frame, to the pixel.
    width, height = output_size("16:9", SHORT_SIDE_PX)
    previews = page.locator("canvas.preview")
    assert previews.count() == 2
    for index, source in enumerate((FIRST, LAST)):
        canvas = previews.nth(index)
        canvas.wait_for()
        with Image.open(source) as image:
            expected = crop_box(image.width, image.height, width, height)
        assert canvas.get_attribute("data-frame") == f"{width}x{height}"
        assert canvas.get_attribute("data-crop") == ",".join(map(str, expected))
    first_preview = _canvas_pixels(page, 0)
    page.screenshot(path=str(screenshots / "create.png"), full_page=True)

    # Installed before the click: the console changes pages in the same document, so it sees every value.
    page.evaluate(RECORD_PROGRESS)
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_url(f"{running.base_url}/console/tasks/task-unified-*")
    task_id = page.url.rsplit("/", 1)[1]
    page.wait_for_function("() => window.__progress.some((value) => value > 0)", timeout=120_000)
    page.screenshot(path=str(screenshots / "task-processing.png"), full_page=True)

    video = page.locator("video")
    video.wait_for(timeout=120_000)
    page.wait_for_function("() => document.querySelector('video').readyState >= 2", timeout=30_000)
    duration_s = page.evaluate("() => document.querySelector('video').duration")
    assert duration_s == pytest.approx(5.0, abs=0.05)
    seen = page.evaluate("() => window.__progress")
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert seen[0] == 0 and seen[-1] == 100, seen
    assert any(0 < value < 100 for value in seen), f"the bar jumped from 0 to 100: {seen}"
    assert page.get_by_role("progressbar").get_attribute("aria-valuenow") == "100"
    page.evaluate("() => document.querySelector('video').play()")
    page.wait_for_function("() => document.querySelector('video').currentTime > 0", timeout=30_000)
    page.evaluate("() => document.querySelector('video').pause()")
    page.get_by_text("Credits").first.wait_for()
    page.get_by_text("capture", exact=True).wait_for()
    page.get_by_text("The link is valid until", exact=False).wait_for()
    page.screenshot(path=str(screenshots / "task-completed.png"), full_page=True)

    # The preview showed what the video's first frame is (a canvas and the encoder scale a little differently).
    src = video.get_attribute("src")
    assert src is not None
    mp4 = tmp_path / "video.mp4"
    mp4.write_bytes(httpx.get(src, timeout=30).content)
    first_frame = next(iter(read_frames(mp4)))
    assert psnr(first_frame, first_preview) > 28, "the preview is not the video's first frame"

    page.get_by_role("navigation").get_by_role("link", name="Tasks").click()
    card = page.locator(f"li.task[data-task-id='{task_id}']")
    card.wait_for()
    assert card.locator(".badge").text_content() == "completed"
    page.wait_for_function(  # the poster shows
        "(id) => { const img = document.querySelector(`li.task[data-task-id='${id}'] img.thumb`);"
        " return img !== null && img.complete && img.naturalWidth > 0; }",
        arg=task_id,
    )
    page.screenshot(path=str(screenshots / "tasks.png"), full_page=True)

    page.get_by_role("navigation").get_by_role("link", name="Account").click()
    page.get_by_role("img", name="Credits spent per day", exact=False).wait_for()
    assert page.locator(".stat .value").first.inner_text() == "95"
    page.screenshot(path=str(screenshots / "account.png"), full_page=True)
    tab.assert_clean()


def _canvas_pixels(page: Any, index: int) -> np.ndarray[Any, Any]:
    """The preview canvas's pixels as an RGB array."""
    data = page.evaluate(
        """(index) => {
          const canvas = document.querySelectorAll('canvas.preview')[index];
          const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
          return {width: canvas.width, height: canvas.height, data: Array.from(pixels.data)};
        }""",
        index,
    )
    rgba = np.array(data["data"], dtype=np.uint8).reshape(data["height"], data["width"], 4)
    return rgba[:, :, :3]
