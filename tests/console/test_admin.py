"""The admin views, signed in with the admin token: create a key (shown once), grant its account credits,
and see the workers and the audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.conftest import ADMIN_TOKEN, Server, Tab, api, sign_in

pytestmark = pytest.mark.slow


def test_the_admin_creates_a_key_and_grants_credits(held: Server, tab: Tab, screenshots: Path) -> None:
    page = tab.page
    sign_in(page, held.base_url, ADMIN_TOKEN)
    assert page.url == f"{held.base_url}/console/admin/accounts"
    nav = page.get_by_role("navigation")
    assert [nav.get_by_role("link").nth(i).inner_text() for i in range(4)] == ["Accounts", "Keys", "Workers", "Audit"]

    nav.get_by_role("link", name="Keys").click()
    page.get_by_label("Key name").fill("studio")
    page.get_by_label("Writes per minute").fill("30")
    page.get_by_label("Unfinished tasks at once").fill("2")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("The new API key")
    secret.wait_for()
    key = secret.input_value()
    assert key.startswith("rg_")
    page.locator("tr", has_text="studio").get_by_role("button", name="Revoke studio").wait_for()
    page.screenshot(path=str(screenshots / "admin-keys.png"), full_page=True)

    me = api(held, key, "GET", "/v1/account").json()
    assert me["balance"] == 0 and me["key"]["limits"]["rpm"] == 30 and me["key"]["limits"]["max_concurrent"] == 2
    account_id = me["id"]

    nav.get_by_role("link", name="Accounts").click()
    page.get_by_label("Account", exact=True).select_option(account_id)
    page.get_by_label("Credits to grant").fill("25")
    page.get_by_label("Note").fill("invoice 7")
    page.get_by_role("button", name="Grant credits").click()
    page.get_by_text("Granted 25 credits to studio", exact=False).wait_for()
    row = page.locator(f"tr[data-account-id='{account_id}']")
    page.wait_for_function(
        "(id) => document.querySelector(`tr[data-account-id='${id}'] .balance`)?.textContent === '25'", arg=account_id
    )
    assert row.locator(".balance").text_content() == "25"
    page.get_by_role("heading", name="Ledger of studio").wait_for()
    assert page.get_by_role("cell", name="invoice 7").count() == 1
    page.screenshot(path=str(screenshots / "admin-accounts.png"), full_page=True)
    assert api(held, key, "GET", "/v1/account").json()["balance"] == 25

    nav.get_by_role("link", name="Workers").click()
    page.get_by_text("Live workers per engine: motion: 1").wait_for()
    page.screenshot(path=str(screenshots / "admin-workers.png"), full_page=True)
    nav.get_by_role("link", name="Audit").click()
    page.get_by_text("The ledger is consistent.").wait_for()
    page.screenshot(path=str(screenshots / "admin-audit.png"), full_page=True)

    # Revoking from the console ends the key at once.
    nav.get_by_role("link", name="Keys").click()
    page.locator("tr", has_text="studio").get_by_role("button", name="Revoke studio").click()
    page.locator("tr", has_text="studio").get_by_text("revoked").wait_for()
    assert api(held, key, "GET", "/v1/account").status_code == 401
    tab.assert_clean()
