"""The `reelgate` command line, run in-process with Typer's runner against a real SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from reelgate.cli import app
from reelgate.config import Settings
from reelgate.media.video import probe_video
from tests.conftest import settings_env
from tests.images import astronaut, encode, shifted

runner = CliRunner()


def run(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=settings_env(settings))
    return result.exit_code, result.output


def test_keys_create_json_list_and_revoke(settings: Settings) -> None:
    code, output = run(settings, "keys", "create", "--name", "ci", "--credits", "12.5", "--json")
    assert code == 0, output
    created = json.loads(output)
    assert created["key"].startswith("rg_") and created["name"] == "ci" and created["credits"] == 12.5
    code, output = run(settings, "keys", "list")
    assert code == 0 and created["id"] in output and "12.5" in output and "active" in output
    assert run(settings, "keys", "revoke", created["id"])[0] == 0
    assert "revoked" in run(settings, "keys", "list")[1]
    code, output = run(settings, "keys", "revoke", created["id"])
    assert code == 1 and "No active key with id" in output


def test_keys_create_shows_the_webhook_secret_once_and_rotation_prints_a_new_one(settings: Settings) -> None:
    code, output = run(settings, "keys", "create", "--name", "hooks", "--json")
    assert code == 0, output
    created = json.loads(output)
    assert created["webhook_secret"].startswith("whsec_")
    code, output = run(settings, "keys", "list")
    assert code == 0 and created["webhook_secret"] not in output  # shown once, never listed
    code, output = run(settings, "keys", "rotate-webhook-secret", created["key"], "--json")
    assert code == 0, output
    rotated = json.loads(output)
    assert rotated["id"] == created["id"]
    assert rotated["webhook_secret"].startswith("whsec_") and rotated["webhook_secret"] != created["webhook_secret"]
    code, output = run(settings, "keys", "rotate-webhook-secret", created["id"])
    assert code == 0 and "whsec_" in output and "both the old and the new secret" in output
    code, output = run(settings, "keys", "create", "--name", "plain")
    assert code == 0 and "whsec_" in output
    assert run(settings, "keys", "revoke", created["id"])[0] == 0
    code, output = run(settings, "keys", "rotate-webhook-secret", created["id"])
    assert code == 1 and "No active key with id" in output


def test_bootstrap_creates_one_dev_key_and_prints_curl(settings: Settings) -> None:
    code, output = run(settings, "keys", "bootstrap", "--base-url", "http://127.0.0.1:9999")
    assert code == 0, output
    assert "rg_" in output and "curl -s http://127.0.0.1:9999/v1/videos/generations" in output
    assert "examples/first-frame.jpg" in output
    code, output = run(settings, "keys", "bootstrap")
    assert code == 0 and "already exists" in output and "rg_" not in output


def test_commands_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    fresh = Settings(home=tmp_path / "fresh")
    code, output = run(fresh, "keys", "list")
    assert code == 1 and "reelgate migrate" in output
    code, output = run(fresh, "migrate")
    assert code == 0 and "revision" in output
    assert run(fresh, "keys", "list")[0] == 0


def test_generate_one_and_two_images(settings: Settings, tmp_path: Path) -> None:
    first, last = tmp_path / "first.jpg", tmp_path / "last.png"
    first.write_bytes(encode(astronaut(), "JPEG"))
    last.write_bytes(encode(shifted(astronaut(), 20)))
    out = tmp_path / "one.mp4"
    code, output = run(
        settings, "generate", "--image", str(first), "--prompt", "pan left", "-o", str(out), "--aspect-ratio", "16:9"
    )
    assert code == 0, output
    info = probe_video(out)
    assert (info.frames, info.width / info.height) == (120, 16 / 9)
    out2 = tmp_path / "two.mp4"
    code, output = run(
        settings,
        "generate",
        "--image",
        str(first),
        "--image",
        str(last),
        "--prompt",
        "morph",
        "--duration",
        "10",
        "-o",
        str(out2),
    )
    assert code == 0, output
    assert probe_video(out2).frames == 240 and "method=" in output


def test_generate_rejects_bad_input_clearly(settings: Settings, tmp_path: Path) -> None:
    code, output = run(settings, "generate", "--image", str(tmp_path / "missing.png"), "--prompt", "x")
    assert code == 1 and "no such file" in output
    not_image = tmp_path / "text.png"
    not_image.write_text("hello")
    code, output = run(settings, "generate", "--image", str(not_image), "--prompt", "x")
    assert code == 1 and "--image #1" in output
    code, output = run(settings, "generate", "--image", str(not_image), "--prompt", "x", "--duration", "7")
    assert code == 1 and "5 or 10" in output


def test_engines_list(settings: Settings) -> None:
    code, output = run(settings, "engines", "list")
    assert code == 0 and "motion" in output and "kling-o1-image-to-video" in output


def test_accounts_credits_and_limited_keys(settings: Settings) -> None:
    code, output = run(settings, "accounts", "create", "--name", "acme", "--group", "vip", "--credits", "10", "--json")
    assert code == 0, output
    account = json.loads(output)
    assert (account["balance"], account["user_group"]) == (10, "vip")
    code, output = run(
        settings,
        *("keys", "create", "--name", "limited", "--account", account["id"], "--models", "kling-o1-image-to-video"),
        *("--rpm", "30", "--max-concurrent", "2", "--expires", "30d", "--json"),
    )
    assert code == 0, output
    key = json.loads(output)
    assert key["account_id"] == account["id"] and key["rpm"] == 30 and key["expires_at"] > 0
    assert run(settings, "keys", "create", "--name", "x", "--models", "nope")[0] == 1
    assert run(settings, "keys", "create", "--name", "x", "--expires", "2001-01-01")[0] == 1
    assert run(settings, "keys", "create", "--name", "x", "--account", "acct_missing")[0] == 1
    assert run(settings, "credits", "grant", account["id"], "5", "--note", "bonus")[0] == 0
    code, output = run(settings, "accounts", "show", account["id"], "--json")
    assert json.loads(output)["available"] == 15 and json.loads(output)["keys"][0]["id"] == key["id"]
    code, output = run(settings, "credits", "show", account["id"])
    assert code == 0 and "bonus" in output and "grant" in output
    code, output = run(settings, "accounts", "list")
    assert code == 0 and account["id"] in output
    code, output = run(settings, "credits", "audit", "--json")
    assert code == 0 and json.loads(output)["ok"] is True


def test_credits_audit_fails_on_a_drifted_balance(settings: Settings) -> None:
    import asyncio

    from sqlalchemy import update

    from reelgate.db.models import Account
    from reelgate.resources import database_for

    code, output = run(settings, "accounts", "create", "--name", "drift", "--credits", "3", "--json")
    account_id = json.loads(output)["id"]

    async def tamper() -> None:
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                await session.execute(update(Account).where(Account.id == account_id).values(balance_millicredits=1))
        finally:
            await db.dispose()

    asyncio.run(tamper())
    code, output = run(settings, "credits", "audit")
    assert code == 1 and "cached balance 1 != sum of entries 3000" in output
