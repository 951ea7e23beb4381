"""The configuration page is generated from `Settings`: every setting has a description, the generator refuses
one without, and the page it builds lists every setting. Also: the docs name no `REELGATE_*` variable that does
not exist (a renamed setting would otherwise live on in the prose)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import yaml
from reelgate_client._core import ENV_API_KEY, ENV_BASE_URL

from reelgate.cli.server import WORKER_TOKEN_ENV
from reelgate.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
HOOK = REPO_ROOT / "docs" / "hooks" / "settings_table.py"
PAGE = REPO_ROOT / "docs" / "configuration.md"

# Environment variables of the test suite, not of the service (tests/conftest.py).
TEST_ONLY = {
    "REELGATE_TEST_POSTGRES_URL",
    "REELGATE_TEST_REDIS_URL",
    "REELGATE_REQUIRE_SERVICES",
    # Where the web console's browser tests leave their screenshots (tests/console/conftest.py).
    "REELGATE_CONSOLE_SCREENSHOTS",
    # The chaos soak's size and pace (tests/soak/): a CI run is small, a by-hand run sets them larger.
    "REELGATE_SOAK_TASKS",
    "REELGATE_SOAK_SEED",
    "REELGATE_SOAK_KILL_EVERY_S",
    "REELGATE_SOAK_CREATE_EVERY_S",
}
# Environment variables of the Python SDK and the remote CLI (clients/python), and of a remote worker's
# token (a command-line option's environment variable), not settings of the service.
CLIENT_ONLY = {ENV_API_KEY, ENV_BASE_URL, WORKER_TOKEN_ENV}


def _load_hook() -> ModuleType:
    # docs/ is not a package: load the hook from its file, as MkDocs does.
    spec = importlib.util.spec_from_file_location("docs_settings_table", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hook = _load_hook()


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"settings without Field(description=...): {missing}"


def test_the_table_has_one_row_per_setting_with_its_description() -> None:
    rows = hook.settings_table().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    for row, (name, field) in zip(rows, Settings.model_fields.items(), strict=True):
        assert row.startswith(f"| `REELGATE_{name.upper()}` |"), row
        assert (field.description or "").strip() in row.replace("\\|", "|"), row


def test_a_setting_without_a_description_fails_the_generator() -> None:
    class WithAnUndescribedSetting(Settings):
        brand_new_knob_s: float = 1.0

    with pytest.raises(hook.UndescribedSettingError, match="REELGATE_BRAND_NEW_KNOB_S"):
        hook.settings_table(WithAnUndescribedSetting.model_fields)


def test_the_page_is_built_with_every_setting() -> None:
    source = PAGE.read_text()
    assert source.count(hook.MARKER) == 1, "docs/configuration.md must hold the table's marker exactly once"
    page = SimpleNamespace(file=SimpleNamespace(src_uri=hook.PAGE))
    rendered = hook.on_page_markdown(source, page=page, config=None, files=None)
    assert hook.MARKER not in rendered
    for name in Settings.model_fields:
        assert f"| `REELGATE_{name.upper()}` |" in rendered, name
    other = SimpleNamespace(file=SimpleNamespace(src_uri="api.md"))
    assert hook.on_page_markdown(source, page=other, config=None, files=None) == source


def test_mkdocs_runs_the_hook() -> None:
    # The !ENV-style tags of mkdocs.yml are not used, so a plain YAML load reads it.
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    assert "docs/hooks/settings_table.py" in config["hooks"]
    assert hook.PAGE == "configuration.md"


def test_docs_name_only_settings_that_exist() -> None:
    known = {f"REELGATE_{name.upper()}" for name in Settings.model_fields} | TEST_ONLY | CLIENT_ONLY
    sources = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
    unknown: dict[str, set[str]] = {}
    for source in sources:
        for variable in re.findall(r"\bREELGATE_[A-Z0-9_]*[A-Z0-9]\b", source.read_text()):
            if variable not in known:
                unknown.setdefault(str(source.relative_to(REPO_ROOT)), set()).add(variable)
    assert not unknown, f"docs name settings that do not exist: {unknown}"
