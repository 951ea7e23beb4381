"""The public routes the web console reads (and anyone may call): the quote of a create, a task's credit
entries, the account's usage per day, and the task's own prompt and end of life in `task_info`."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import CreditEntry
from reelgate.media.framing import output_size
from tests.accounts.harness import create_body, harness
from tests.conftest import Backend, auth, make_settings, migrate_db

DAY_S = 86400


def _settings(tmp_path: Path, backend: Backend, **overrides: object) -> Settings:
    settings = make_settings(tmp_path / "home", backend, **overrides)
    migrate_db(settings)
    return settings


def test_the_quote_is_what_a_create_reserves_and_the_frame_the_engine_renders(
    tmp_path: Path, sqlite_backend: Backend
) -> None:
    pricing = tmp_path / "pricing.toml"
    pricing.write_text('[default]\nbilling_rule = "per_second"\nprice = 1.5\n\n[groups.vip]\nmultiplier = 0.5\n')
    settings = _settings(tmp_path, sqlite_backend, pricing_file=pricing)
    with harness(settings) as h:
        key, _ = h.new_key(credits=10, user_group="vip")
        for ratio in ("16:9", "9:16", "1:1"):
            for duration in (5, 10):
                query = {"model": DEFAULT_MODEL, "aspect_ratio": ratio, "duration": duration}
                quote = h.client.get("/v1/videos/quote", params=query, headers=auth(key))
                assert quote.status_code == 200, quote.text
                body = quote.json()
                width, height = output_size(ratio, settings.motion_short_side_px)
                assert (body["width"], body["height"], body["engine"]) == (width, height, "motion")
                assert body["user_group"] == "vip" and body["billing_rule"] == "per_second"
                assert body["credits"] == 1.5 * duration * 0.5
                assert body["available"] == 10 and body["affordable"] is (body["credits"] <= 10)
        created = h.client.post(
            "/v1/videos/generations", json=create_body(10, aspect_ratio="1:1"), headers=auth(key)
        ).json()
        quote = h.client.get(
            "/v1/videos/quote", params={"duration": 10, "aspect_ratio": "1:1"}, headers=auth(key)
        ).json()
        assert created["usage"]["credits_reserved"] == quote["credits"] == 7.5
        assert quote["available"] == 2.5 and quote["affordable"] is False
        refused = h.client.post("/v1/videos/generations", json=create_body(10), headers=auth(key))
        assert refused.status_code == 402, "affordable: false means the create is a 402"


@pytest.mark.parametrize(
    ("query", "status", "param"),
    [
        ({"duration": 7}, 400, "duration"),
        ({"aspect_ratio": "4:3"}, 400, "aspect_ratio"),
        ({"model": "no-such-model"}, 404, "model"),
        ({"modle": DEFAULT_MODEL}, 400, "modle"),
    ],
)
def test_a_bad_quote_names_the_field(
    tmp_path: Path, sqlite_backend: Backend, query: dict[str, str | int], status: int, param: str
) -> None:
    with harness(_settings(tmp_path, sqlite_backend)) as h:
        key, _ = h.new_key(credits=10)
        answer = h.client.get("/v1/videos/quote", params=query, headers=auth(key))
        assert answer.status_code == status
        assert answer.json()["error"]["param"] == param
        assert h.client.get("/v1/videos/quote").status_code == 401


def test_a_tasks_credit_entries_and_its_end_of_life(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = _settings(tmp_path, sqlite_backend)
    with harness(settings) as h:
        key, _ = h.new_key(credits=20)
        other, _ = h.new_key(credits=20)
        task = h.client.post("/v1/videos/generations", json=create_body(prompt="<b>dusk</b>"), headers=auth(key)).json()
        assert task["task_info"]["prompt"] == "<b>dusk</b>"
        assert "expires_at" not in task["task_info"], "an unfinished task has no end of life yet"
        held = h.client.get(f"/v1/tasks/{task['id']}/credits", headers=auth(key)).json()
        assert held["state"] == "held" and [(e["kind"], e["credits"]) for e in held["data"]] == [("reserve", 5)]

        cancelled = h.client.post(f"/v1/tasks/{task['id']}/cancel", headers=auth(key)).json()
        listed = h.client.get("/v1/tasks", headers=auth(key)).json()["data"][0]
        assert listed["task_info"]["prompt"] == "<b>dusk</b>"
        expires_at = cancelled["task_info"]["expires_at"]
        assert listed["task_info"]["expires_at"] == expires_at
        assert expires_at - settings.result_ttl_s == pytest.approx(cancelled["created"], abs=5)
        released = h.client.get(f"/v1/tasks/{task['id']}/credits", headers=auth(key)).json()
        assert released["state"] == "released"
        assert [e["kind"] for e in released["data"]] == ["reserve", "release"]
        assert released["data"][0]["created"] <= released["data"][1]["created"]

        assert h.client.get(f"/v1/tasks/{task['id']}/credits", headers=auth(other)).status_code == 404
        assert h.client.get("/v1/tasks/nope/credits", headers=auth(key)).json()["error"]["param"] == "task_id"


def test_usage_per_day_from_the_ledger(tmp_path: Path, sqlite_backend: Backend) -> None:
    from reelgate.accounts import service as accounts

    with harness(_settings(tmp_path, sqlite_backend)) as h:
        key, account_id = h.new_key(credits=100)
        first = h.client.post("/v1/videos/generations", json=create_body(), headers=auth(key)).json()
        h.client.post("/v1/videos/generations", json=create_body(10), headers=auth(key))
        h.client.post(f"/v1/tasks/{first['id']}/cancel", headers=auth(key))
        usage = h.client.get("/v1/account/usage", headers=auth(key)).json()
        assert usage["days"] == 30 and len(usage["data"]) == 30
        today = usage["data"][-1]
        assert (today["tasks"], today["completed"], today["failed"]) == (2, 0, 1)
        assert (today["credits_spent"], today["credits_released"]) == (0, 5)
        assert all(day["tasks"] == 0 for day in usage["data"][:-1])
        assert [day["date"] for day in usage["data"]] == sorted(day["date"] for day in usage["data"])

        # Entries on other days land on their own UTC day; those before the window are left out.
        now = 20_000 * DAY_S + 3600.0  # 1 a.m. UTC

        async def seed() -> None:
            async with h.resources.db.transaction() as session:
                for kind, amount, at in [
                    ("reserve", 4000, now - DAY_S),
                    ("capture", 4000, now - DAY_S + 60),
                    ("reserve", 2500, now - 2 * DAY_S - 3000),  # 00:10 on the window's first day
                    ("capture", 2500, now - 2 * DAY_S - 7800),  # 23:10 the day before: outside
                ]:
                    entry = CreditEntry(account_id=account_id, kind=kind, amount_millicredits=amount, created_at=at)
                    session.add(entry)

        h.call(seed)
        window = h.call(lambda: accounts.account_usage(h.resources.db, account_id, days=3, now=now))
        assert [(d.date, d.tasks, d.completed, d.credits_spent) for d in window.data] == [
            ("2024-10-02", 1, 0, 0.0),
            ("2024-10-03", 1, 1, 4.0),
            ("2024-10-04", 0, 0, 0.0),
        ]
        assert window.credits_spent == 4.0
        assert h.client.get("/v1/account/usage?days=91", headers=auth(key)).json()["error"]["param"] == "days"
        assert h.client.get("/v1/account/usage?day=3", headers=auth(key)).status_code == 400


def test_the_new_routes_are_in_the_openapi_document(tmp_path: Path, sqlite_backend: Backend) -> None:
    with harness(_settings(tmp_path, sqlite_backend)) as h:
        paths = h.client.get("/openapi.json").json()["paths"]
    assert paths["/v1/videos/quote"]["get"]["operationId"] == "quoteVideoGeneration"
    assert paths["/v1/tasks/{task_id}/credits"]["get"]["operationId"] == "getTaskCredits"
    assert paths["/v1/account/usage"]["get"]["operationId"] == "getAccountUsage"
    assert not any(path.startswith("/console") for path in paths), "the console is not the API"
