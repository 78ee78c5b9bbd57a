"""Every page respects the roles: a viewer reads, an analyst triages, an admin manages."""

from __future__ import annotations

import pytest
from tests.web.conftest import Site, open_alert_ids, post_form


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        ("vera", "/ui/", 200),
        ("vera", "/ui/alerts", 200),
        ("vera", "/ui/events", 200),
        ("vera", "/ui/rules", 200),
        ("vera", "/ui/silences", 200),
        ("vera", "/ui/pipeline", 200),
        ("vera", "/ui/reviews", 200),
        ("vera", "/ui/reports", 200),
        ("vera", "/ui/admin", 403),
        ("alice", "/ui/admin", 403),
        ("adam", "/ui/admin", 200),
    ],
)
def test_pages_by_role(site: Site, user: str, path: str, status: int) -> None:
    with site.login(user) as client:
        assert client.get(path).status_code == status


def test_a_viewer_cannot_triage_and_sees_no_triage_form(site: Site) -> None:
    alert_id = open_alert_ids(site)[0]
    with site.login("vera") as client:
        page = client.get(f"/ui/alerts/{alert_id}")
        assert 'id="alert-triage"' not in page.text
        one = post_form(client, "/ui/", f"/ui/alerts/{alert_id}", action="ack", note="seen")
        bulk = post_form(
            client, "/ui/", "/ui/alerts", ids=str(alert_id), action="resolve", note="done"
        )
        silence = post_form(
            client, "/ui/", "/ui/silences", matchers='rule_id="x"', duration="1h", comment="quiet"
        )
    assert one.status_code == bulk.status_code == silence.status_code == 403
    assert "analyst needed" in one.text
    with site.running.client("viewer") as viewer:
        assert viewer.alert(alert_id)["status"] == "open"
        assert viewer.silences() == []


def test_an_analyst_cannot_manage_users_or_tokens(site: Site) -> None:
    runtime = site.running.runtime
    with site.login("alice") as client:
        user = post_form(
            client,
            "/ui/",
            "/ui/admin/users",
            action="add",
            name="eve",
            role="admin",
            password="a long enough password",
        )
        promote = post_form(
            client, "/ui/", "/ui/admin/users", action="role", name="alice", role="admin"
        )
        token = post_form(
            client, "/ui/", "/ui/admin/tokens", action="create", name="eve", role="admin"
        )
    assert user.status_code == promote.status_code == token.status_code == 403
    assert runtime.users.get("eve") is None
    assert runtime.users.get("alice").role.value == "analyst"  # type: ignore[union-attr]
    assert "eve" not in {t.name for t in runtime.tokens.list()}


def test_an_admin_adds_a_user_who_can_then_log_in(site: Site) -> None:
    with site.login("adam") as client:
        response = post_form(
            client,
            "/ui/admin",
            "/ui/admin/users",
            action="add",
            name="nina",
            role="viewer",
            password="nina's long password",
        )
        assert response.status_code == 303
        weak = post_form(
            client,
            "/ui/admin",
            "/ui/admin/users",
            action="add",
            name="weak",
            role="viewer",
            password="short",
        )
        assert weak.status_code == 422 and "at least 12 characters" in weak.text
    with site.login("nina", "nina's long password") as nina:
        assert "nina <small>(viewer)</small>" in nina.get("/ui/").text


def test_an_admin_creates_a_token_whose_secret_is_shown_once(site: Site) -> None:
    with site.login("adam") as client:
        created = post_form(
            client,
            "/ui/admin",
            "/ui/admin/tokens",
            action="create",
            name="ci-reader",
            role="viewer",
            expires="30d",
        )
        assert created.status_code == 200
        secret = created.text.split("<code>k3w_", 1)[1].split("</code>", 1)[0]
        assert "k3w_" + secret not in client.get("/ui/admin").text
    token = site.running.runtime.tokens.authenticate("k3w_" + secret)
    assert token is not None and token.name == "ci-reader" and token.expires is not None
