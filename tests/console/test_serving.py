"""How the console is served (headers, routes, the package's files) and what its scripts never do; and the
preview's crop computed in the browser against the engine's own for many image sizes."""

from __future__ import annotations

import random
import re
from importlib import resources as package_files
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelgate.api.console import content_security_policy
from reelgate.config import Settings
from reelgate.media.framing import ASPECT_RATIOS, crop_box, nearest_aspect_ratio, output_size
from tests.console.conftest import Server, Tab

STATIC = Path(str(package_files.files("reelgate.console").joinpath("static")))
# Ways a script turns a string into markup or code: none may appear in the console's sources.
INLINE = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+\s*=", re.IGNORECASE)
FORBIDDEN = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(\s*[\"'`]"
)


def test_the_shell_and_every_page_path_carry_the_strict_headers(client: TestClient) -> None:
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/console"
    for path in ("/console", "/console/", "/console/tasks/task-unified-1-abcdefgh", "/console/admin/keys"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
        assert "frame-ancestors 'none'" in policy and "base-uri 'none'" in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert '<script type="module" src="/console/assets/app.js">' in answer.text
        assert not INLINE.search(answer.text), "no inline script, style or event handler in the shell"


def test_every_asset_is_served_from_the_package_with_the_headers(client: TestClient) -> None:
    files = sorted(path.name for path in STATIC.iterdir())
    assert {"index.html", "app.js", "console.css", "framing.js", "sse.js"} <= set(files)
    for name in files:
        answer = client.get(f"/console/assets/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-cache"
        if name.endswith(".js"):
            assert answer.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    missing = client.get("/console/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_the_scripts_never_parse_strings_as_markup_or_code() -> None:
    for path in sorted(STATIC.glob("*.js")):
        found = FORBIDDEN.findall(path.read_text())
        assert not found, f"{path.name} uses {found}"
    code = "".join(path.read_text() for path in STATIC.glob("*.js"))
    assert "localStorage." not in code and "document.cookie" not in code, "the key stays in sessionStorage"


def test_the_policy_admits_the_result_links_origin_when_it_is_not_this_server(tmp_path: Path) -> None:
    local = Settings(home=tmp_path, public_url="https://video.example.com")
    assert "media-src 'self' blob: https://video.example.com;" in content_security_policy(local) + ";"
    presigned = Settings(
        home=tmp_path,
        public_url="https://video.example.com",
        storage_url="s3://bucket/videos",
        s3_endpoint_url="https://minio.example.net:9000",
        result_links="presigned",
    )
    policy = content_security_policy(presigned)
    assert "media-src 'self' blob: https://video.example.com https://minio.example.net:9000" in policy
    assert "img-src 'self' blob: https://video.example.com https://minio.example.net:9000 data:" in policy


def test_a_proxy_root_path_prefixes_the_shells_urls(settings: Settings) -> None:
    from reelgate.app import create_app

    with TestClient(create_app(settings), root_path="/rg") as prefixed:
        page = prefixed.get("/console")
    assert 'data-root="/rg"' in page.text and 'src="/rg/console/assets/app.js"' in page.text
    assert 'href="/rg/console/assets/console.css"' in page.text and 'href="/rg/console" data-link' in page.text
    assert '="/console' not in page.text


@pytest.mark.slow
def test_the_preview_crops_as_the_engine_does(running: Server, tab: Tab) -> None:
    """framing.js against media/framing.py: the crop box and the nearest ratio for many sizes, the halfway
    cases of rounding included, computed in the browser by the module the console itself loads."""
    rng = random.Random(14)
    # (72, 1000), (88, 300) and (200, 72) crop 40.5 or 49.5 pixels at 16:9 or 9:16 720p: Python rounds the half
    # to even, Math.round would not.
    sizes = [(72, 1000), (88, 300), (200, 72), (512, 512), (641, 480), (480, 641), (1921, 1079), (64, 4000)]
    sizes += [(4000, 64), (1000, 563), (99, 100)]
    sizes += [(rng.randint(64, 6000), rng.randint(64, 6000)) for _ in range(300)]
    frames = [output_size(ratio, side) for ratio in ASPECT_RATIOS for side in (144, 240, 333, 720, 1080)]
    cases = [(w, h, fw, fh) for (w, h) in sizes for (fw, fh) in frames]
    page = tab.page
    page.goto(f"{running.base_url}/console")
    computed = page.evaluate(
        """async (cases) => {
          const framing = await import('/console/assets/framing.js');
          return cases.map(([w, h, fw, fh]) => {
            const box = framing.cropBox(w, h, fw, fh);
            return [box.x, box.y, box.width, box.height, framing.nearestAspectRatio(w, h)];
          });
        }""",
        cases,
    )
    expected = [[*crop_box(w, h, fw, fh), nearest_aspect_ratio(w, h)] for (w, h, fw, fh) in cases]
    mismatches = [(case, got, want) for case, got, want in zip(cases, computed, expected, strict=True) if got != want]
    assert not mismatches, mismatches[:5]
    tab.assert_clean()


def test_every_console_file_ships_in_the_wheel() -> None:
    """The package data globs of pyproject.toml cover every file of the console (a wheel without them would
    serve a blank page). `pip wheel . --no-deps` and a listing show the same."""
    import tomllib
    from fnmatch import fnmatch

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["reelgate"]
    package_root = STATIC.parents[1]
    files = [path.relative_to(package_root).as_posix() for path in STATIC.rglob("*") if path.is_file()]
    assert files
    assert [name for name in files if not any(fnmatch(name, glob) for glob in globs)] == []
