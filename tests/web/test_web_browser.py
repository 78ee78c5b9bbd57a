"""The web UI in a real browser (Debian's Chromium through Playwright): log in, triage an alert
with a note, search events, create a silence, complete and sign off a review."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from tests.web.conftest import PASSWORD, Site, open_alert_ids


def log_in(page: Page, site: Site, name: str = "alice") -> None:
    page.goto(f"{site.url}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("button[value=password]")
    expect(page).to_have_url(f"{site.url}/ui/")


def test_log_in_and_see_the_overview(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/ui/login")
    page.fill("#username", "alice")
    page.fill("#password", "not the password")
    page.click("button[value=password]")
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    log_in(page, site)
    expect(page.locator("header")).to_contain_text("alice (analyst)")
    expect(page.locator("h1")).to_contain_text("Overview")
    expect(page.locator("svg[aria-label='Top identities by denied requests']")).to_be_visible()


def test_triage_an_alert_with_a_note(page: Page, site: Site) -> None:
    alert_id = open_alert_ids(site)[0]
    log_in(page, site)
    page.goto(f"{site.url}/ui/alerts")
    page.click(f"tr[data-alert='{alert_id}'] a")
    expect(page.locator("#alert-status")).to_have_text("open")
    page.select_option("#alert-triage select[name=action]", "false_positive")
    page.click("#alert-triage button[type=submit]")  # no note: refused
    expect(page.locator("h1")).to_have_text("Nothing changed")
    page.go_back()
    page.select_option("#alert-triage select[name=action]", "false_positive")
    page.fill("#alert-triage textarea[name=note]", "the nightly backup job, expected")
    page.click("#alert-triage button[type=submit]")
    expect(page.locator("#alert-status")).to_have_text("false positive")
    expect(page.locator("#history")).to_contain_text("the nightly backup job, expected")
    expect(page.locator("#history")).to_contain_text("alice")


def test_search_events_and_open_one(page: Page, site: Site) -> None:
    log_in(page, site)
    page.click("header >> text=Events")
    page.fill("#search input[name=start]", "30d")
    page.fill("#search input[name=user]", "system:serviceaccount:default:build-bot")
    page.click("#search button[type=submit]")
    rows = page.locator("#results tr[data-key]")
    expect(rows.first).to_be_visible()
    for identity in rows.locator("td:nth-child(3)").all_inner_texts():
        assert identity == "system:serviceaccount:default:build-bot"
    rows.first.locator("a").click()
    expect(page.locator("#raw")).to_contain_text(
        '"username": "system:serviceaccount:default:build-bot"'
    )
    page.click("#show-around")
    expect(page.locator("#results tr[data-key]").first).to_be_visible()


def test_create_a_silence_from_an_alert(page: Page, site: Site) -> None:
    alert_id = open_alert_ids(site)[0]
    rule_id = site.running.runtime.store.get_alert(alert_id).rule_id  # type: ignore[union-attr]
    log_in(page, site)
    page.goto(f"{site.url}/ui/alerts/{alert_id}")
    page.click("text=Silence alerts like this…")
    expect(page.locator("#matchers")).to_contain_text(f'rule_id="{rule_id}"')
    page.fill("#new-silence input[name=duration]", "3h")
    page.fill("#new-silence input[name=comment]", "rolling out the new backup job")
    page.click("#new-silence button[type=submit]")
    expect(page.get_by_role("status")).to_contain_text("created")
    row = page.locator("#silences tr.active")
    expect(row).to_contain_text(f"rule_id={rule_id}")
    expect(row).to_contain_text("rolling out the new backup job")
    expect(row).to_contain_text("alice")


def test_complete_and_sign_off_a_review(page: Page, site: Site) -> None:
    alert_id = open_alert_ids(site)[0]
    log_in(page, site)
    page.click("header >> text=Reviews")
    page.click("tr[data-schedule='daily'] button[type=submit]")  # the last day that ended
    expect(page.locator("h1")).to_contain_text("Review #")
    items = page.locator("#checklist tr[data-item]")
    count = items.count()
    assert count > 0
    for index in range(count):
        form = page.locator("#checklist tr[data-item]").nth(index).locator("form")
        form.locator("select[name=state]").select_option("done")
        form.locator("button").click()
    expect(page.locator("#checklist tr[data-state='done']")).to_have_count(count)
    page.fill("#finding-text", "build-bot holds cluster-admin rights it does not need")
    page.select_option("#new-finding select[name=severity]", "high")
    page.fill("#new-finding input[name=alerts]", str(alert_id))
    page.fill("#new-finding input[name=owner]", "platform-team")
    page.fill("#new-finding input[name=due]", "14d")
    page.click("#new-finding button[type=submit]")
    expect(page.locator("#finding-list")).to_contain_text("cluster-admin rights")
    expect(page.locator("#finding-list")).to_contain_text("platform-team")
    page.fill("#statement", "Reviewed every alert of the day; one finding for the platform team.")
    page.click("#sign-off button[type=submit]")
    expect(page.locator("#review-state")).to_have_text("signed")
    expect(page.locator("#signoff")).to_contain_text("alice")
    expect(page.locator("#sign-off")).to_have_count(0)  # nothing left to change
    reviews = site.running.runtime.reviews
    assert reviews is not None and reviews.verify().ok
    page.click("#report-link")  # the report of the period the review covered
    expect(page.locator("h2#alerts")).to_contain_text("Alerts and triage")
    expect(page.locator("h2#pipeline_health")).to_be_visible()
