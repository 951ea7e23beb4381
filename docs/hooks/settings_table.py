"""MkDocs hook: the settings table of `configuration.md`, generated from `Settings.model_fields`.

The descriptions in `src/reelgate/config.py` are the only copy of what each setting means, so the page cannot
drift from the code. `tests/test_docs_config.py` renders the same table and fails on a setting without a
description.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, get_args

import annotated_types
from mkdocs.exceptions import PluginError
from pydantic.fields import FieldInfo

from reelgate.config import Settings

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page

MARKER = "<!-- settings-table -->"
PAGE = "configuration.md"
ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))

# `^(a|b)$` is how config.py spells a choice; shown as the choice rather than as a regex.
_CHOICE = re.compile(r"^\^\(([\w|]+)\)\$$")


class UndescribedSettingError(ValueError):
    """A setting has no description, so the page would show it unexplained."""


def env_var(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    # `pathlib.Path | None` -> `Path | None`: module paths are noise to someone setting a variable.
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", str(annotation)).replace("NoneType", "None")


_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


def _constraints(field: FieldInfo) -> list[str]:
    shown: list[str] = []
    for item in field.metadata:
        for kind, attribute, symbol in _BOUNDS:
            if isinstance(item, kind):
                shown.append(f"{symbol} {_value(getattr(item, attribute))}")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            choice = _CHOICE.match(pattern)
            if choice:
                shown.append("one of " + ", ".join(f"`{option}`" for option in choice.group(1).split("|")))
            else:
                shown.append(f"matches `{pattern}`")
    return shown


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True, validated_data={})
    if value is None:
        return "(none)"
    if value == "":
        return "(empty)"
    return f"`{_value(value)}`"


def _cell(text: str) -> str:
    # A pipe would end the cell, except inside a code span, where the tables extension leaves it alone (and
    # would show an escaping backslash as it is).
    parts = re.split(r"(`[^`]*`)", text.replace("\n", " "))
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)


def settings_table(fields: Mapping[str, FieldInfo] | None = None) -> str:
    """The Markdown table of `fields` (default: every field of `Settings`), in declaration order.

    Raises UndescribedSettingError naming every field without a description, so neither the build nor the test
    can pass with a setting left unexplained."""
    fields = Settings.model_fields if fields is None else fields
    missing = [name for name, field in fields.items() if not (field.description or "").strip()]
    if missing:
        raise UndescribedSettingError(
            "settings without a description (add Field(..., description=...) in src/reelgate/config.py): "
            + ", ".join(env_var(name) for name in missing)
        )
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name, field in fields.items():
        kind = ", ".join([f"`{_type_name(field.annotation)}`", *_constraints(field)])
        description = (field.description or "").strip()
        rows.append(f"| `{env_var(name)}` | {_cell(kind)} | {_cell(_default(field))} | {_cell(description)} |")
    return "\n".join(rows)


def render_page(markdown: str, fields: Mapping[str, FieldInfo] | None = None) -> str:
    """`markdown` with its one marker replaced by the table; a page without exactly one marker is an error."""
    count = markdown.count(MARKER)
    if count != 1:
        raise ValueError(f"{PAGE} must contain {MARKER!r} exactly once, found {count}")
    return markdown.replace(MARKER, settings_table(fields))


def on_page_markdown(markdown: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    try:
        return render_page(markdown)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
