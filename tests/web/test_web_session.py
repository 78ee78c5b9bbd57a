"""Logging in and out of the web UI: passwords, tokens, CSRF, throttling, session endings."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from tests.server.conftest import StartServer
from tests.web.conftest import PASSWORD, Site, csrf_of, post_form, post_login

from k3watch.server.config import WebConfig
from k3watch.server.tokens import Role
from k3watch.web.app import safe_next
from k3watch.web.session import Sessions, load_secret


def test_a_page_without_a_session_sends_the_browser_to_the_login_page(site: Site) -> None:
    with site.client() as client:
        response = client.get("/ui/alerts?severity=high")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=/ui/alerts%3Fseverity%3Dhigh"


def test_a_user_logs_in_with_a_password_and_sees_their_name(site: Site) -> None:
    with site.client() as client:
        response = post_login(client, username="alice", password=PASSWORD)
        assert response.status_code == 303 and response.headers["location"] == "/ui/"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui/" in cookie
        page = client.get("/ui/")
    assert page.status_code == 200
    assert "alice <small>(analyst)</small>" in page.text


def test_a_wrong_password_or_name_is_refused_alike(site: Site) -> None:
    with site.client() as client:
        wrong_password = post_login(client, username="alice", password="not the password!")
        unknown_name = post_login(client, username="mallory", password=PASSWORD)
        assert client.get("/ui/").status_code == 303
    for response in (wrong_password, unknown_name):
        assert response.status_code == 401
        assert "Wrong user name or password." in response.text


def test_a_token_logs_in_but_an_agent_token_does_not(site: Site) -> None:
    with site.client() as client:
        response = post_login(client, method="token", token=site.running.tokens["analyst"])
        assert response.status_code == 303
        assert "test-analyst <small>(analyst)</small>" in client.get("/ui/").text
    with site.client() as client:
        response = post_login(client, method="token", token=site.running.tokens["agent"])
    assert response.status_code == 401


def test_a_login_form_without_its_own_token_is_refused(site: Site) -> None:
    with site.client() as client:
        client.get("/ui/login")
        response = client.post(
            "/ui/login",
            data={"csrf": "forged", "username": "alice", "password": PASSWORD},
        )
    assert response.status_code == 403
    assert "expired" in response.text


def test_changes_without_the_sessions_csrf_token_are_refused(site: Site) -> None:
    alert_id = _an_open_alert(site)
    with site.login("alice") as client:
        forged = client.post(
            "/ui/alerts",
            data={"ids": str(alert_id), "action": "ack", "note": "x", "csrf": "nope"},
        )
        missing = client.post(f"/ui/alerts/{alert_id}", data={"action": "ack", "note": "x"})
    assert forged.status_code == missing.status_code == 403
    with site.running.client("viewer") as viewer:
        assert viewer.alert(alert_id)["status"] == "open"


def test_logging_out_ends_the_session_even_for_a_copy_of_the_cookie(site: Site) -> None:
    with site.login("alice") as client:
        kept = dict(client.cookies)
        response = post_form(client, "/ui/", "/ui/logout")
        assert response.status_code == 303
    with httpx.Client(base_url=site.url, cookies=kept, follow_redirects=False) as replay:
        assert replay.get("/ui/").status_code == 303


@pytest.mark.parametrize("change", ["password", "role", "removal"])
def test_a_new_password_a_new_role_or_removal_ends_open_sessions(site: Site, change: str) -> None:
    users = site.running.runtime.users
    with site.login("alice") as client:
        assert client.get("/ui/").status_code == 200
        if change == "password":
            users.set_password("alice", "another long password")
        elif change == "role":
            users.set_role("alice", Role.VIEWER)
        else:
            users.remove("alice")
        assert client.get("/ui/").status_code == 303


def test_a_revoked_token_ends_its_session(site: Site) -> None:
    with site.client() as client:
        post_login(client, method="token", token=site.running.tokens["viewer"])
        assert client.get("/ui/").status_code == 200
        site.running.runtime.tokens.revoke("test-viewer")
        assert client.get("/ui/").status_code == 303


def test_repeated_failed_logins_are_throttled(start_server: StartServer) -> None:
    # One failure a burst, then one every two minutes: the second try within the test is over.
    running = start_server(web=WebConfig(login_attempts_per_minute=0.5))
    running.runtime.users.add("alice", Role.ANALYST, PASSWORD)
    site = Site(running)
    with site.client() as client:
        first = post_login(client, username="alice", password="a wrong guess, the first")
        second = post_login(client, username="alice", password=PASSWORD)
        other_name = post_login(client, username="bob", password="another guess entirely")
    assert first.status_code == 401
    assert second.status_code == 429  # even the right password, until the rate drops
    assert int(second.headers["retry-after"]) >= 60
    assert other_name.status_code == 429  # the address is limited too, whatever the name


def test_pages_forbid_framing_and_scripts_from_elsewhere(site: Site) -> None:
    with site.login("vera") as client:
        response = client.get("/ui/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in response.text
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", response.text)
    assert response.headers["cache-control"] == "no-store"


def test_after_login_the_browser_goes_only_to_a_page_of_the_ui() -> None:
    assert safe_next("/ui/alerts?status=open") == "/ui/alerts?status=open"
    for target in (
        "https://evil.example/ui/",
        "//evil.example/ui/",
        "/api/v1/tokens",
        "",
        "/ui/\\evil",
    ):
        assert safe_next(target) == "/ui/"


def test_the_session_cookie_expires_with_its_lifetime(site: Site) -> None:
    sessions_lifetime = site.running.runtime.config.server.web.session_lifetime
    assert sessions_lifetime == "12h"
    with site.login("vera") as client:
        cookie = client.cookies["k3watch_session"]
    web_sessions = _sessions(site)
    assert web_sessions.session(cookie) is not None
    web_sessions.lifetime = 0.5
    time.sleep(1.1)  # itsdangerous keeps whole seconds
    assert web_sessions.session(cookie) is None


def _sessions(site: Site) -> Sessions:
    runtime = site.running.runtime
    return Sessions(
        load_secret(site.running.data_dir),
        runtime.users,
        runtime.tokens,
        lifetime=3600,
        attempts_per_minute=10,
    )


def _an_open_alert(site: Site) -> int:
    with site.running.client("viewer") as viewer:
        return int(viewer.alerts(status="open", limit=1)["alerts"][0]["id"])


def test_csrf_token_is_in_every_form_of_a_page(site: Site) -> None:
    with site.login("alice") as client:
        html = client.get(f"/ui/alerts/{_an_open_alert(site)}").text
    assert html.count('name="csrf"') >= 2  # the log-out form and the triage form
    assert csrf_of(html)
