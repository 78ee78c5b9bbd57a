"""What the pages show, checked against the store: overview, alert queue and triage, an
alert's events and timeline, event search and detail, rules, silences."""

from __future__ import annotations

import re
import time
from urllib.parse import quote, unquote

import orjson
from tests.server.test_server_ingest import post
from tests.web.conftest import Site, attack_lines, open_alert_ids, post_form

from k3watch.rules.loader import load_rules
from k3watch.server.api import find_event
from k3watch.store.base import AggregateQuery, AlertQuery, EventQuery


def numbers(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert found, element_id
    return found.group(1)


def test_the_overview_counts_what_the_store_holds(site: Site) -> None:
    store = site.running.runtime.store
    with site.login("vera") as client:
        html = client.get("/ui/?period=7d").text
    end = (time.time() // 3600 + 1) * 3600
    events = sum(b.count for b in store.aggregate(AggregateQuery(start=end - 7 * 86400)))
    assert int(numbers(html, "events-total").replace(",", "")) == events > 0
    severities = store.alert_counts("severity", end - 7 * 86400)
    assert severities
    for severity, count in severities.items():
        assert f'data-severity="{severity}">{count}<' in html
    assert "Events per" in html and "<svg" in html
    assert "Top identities by denied requests" in html


def test_bulk_triage_needs_a_note_and_records_who_did_it(site: Site) -> None:
    ids = open_alert_ids(site)[:2]
    with site.login("alice") as client:
        refused = post_form(
            client, "/ui/alerts", "/ui/alerts", ids=[str(i) for i in ids], action="resolve", note=""
        )
        assert refused.status_code == 422 and "A note is required" in refused.text
        done = post_form(
            client,
            "/ui/alerts",
            "/ui/alerts",
            ids=[str(i) for i in ids],
            action="resolve",
            note="maintenance window, ticket 42",
        )
        assert done.status_code == 303
        assert "2 alerts marked resolved" in unquote(done.headers["location"])
    with site.running.client("viewer") as viewer:
        for alert_id in ids:
            alert = viewer.alert(alert_id)
            assert alert["status"] == "resolved"
            last = alert["history"][-1]
            assert (last["actor"], last["action"], last["note"]) == (
                "alice",
                "resolve",
                "maintenance window, ticket 42",
            )


def test_the_alert_page_shows_its_events_rule_advice_timeline_and_history(site: Site) -> None:
    runtime = site.running.runtime
    alert_id = next(
        i
        for i in open_alert_ids(site)
        if runtime.store.get_alert(i).event_keys  # type: ignore[union-attr]
    )
    with site.login("alice") as client:
        post_form(
            client,
            f"/ui/alerts/{alert_id}",
            f"/ui/alerts/{alert_id}",
            action="assign",
            assignee="alice",
            note="",
        )
        html = client.get(f"/ui/alerts/{alert_id}").text
    alert = runtime.store.get_alert(alert_id)
    assert alert is not None and alert.assignee == "alice"
    rule = runtime.ruleset.get(alert.rule_id)
    assert rule is not None
    assert rule.info.description.split("\n")[0][:40] in html.replace("&#39;", "'")
    triggering = html.split('id="triggering"', 1)[1].split("</table>", 1)[0]
    stored = [find_event(runtime.store, key) for key in alert.event_keys[:25]]
    keys = [e.key for e in stored if e is not None]
    assert keys and re.findall(r'data-key="([^"]+)"', triggering) == keys
    timeline = html.split('id="timeline"', 1)[1].split("</table>", 1)[0]
    # the timeline holds the triggering events themselves, highlighted
    assert 'class="stand-out"' in timeline
    assert all(f'data-key="{k}"' in timeline for k in keys[:5])
    history = html.split('id="history"', 1)[1].split("</table>", 1)[0]
    assert "alice" in history and "assign" in history


def test_event_search_filters_and_the_event_page_links_back(site: Site) -> None:
    store = site.running.runtime.store
    some = store.search(EventQuery(limit=1)).events[0]
    user = some.raw["user"]["username"]
    expected = store.search(EventQuery(filters={"user": (user,)}, start=0, limit=50)).events
    with site.login("vera") as client:
        html = client.get("/ui/events", params={"user": user, "start": "3650d"}).text
        results = html.split('id="results"', 1)[1].split("</table>", 1)[0]
        shown = re.findall(r'data-key="([^"]+)"', results)
        assert shown == [e.key for e in expected]
        detail = client.get(f"/ui/events/{quote(some.key, safe='')}").text
    assert "search for this value" in detail
    assert f"user={quote(user, safe='')}" in detail.replace("%3A", ":").replace(":", "%3A")
    assert 'id="show-around"' in detail and some.node in detail


def test_a_bad_time_in_the_search_is_shown_not_crashed_on(site: Site) -> None:
    with site.login("vera") as client:
        response = client.get("/ui/events", params={"start": "last tuesday"})
    assert response.status_code == 200
    assert "use RFC 3339" in response.text


def test_the_rules_page_marks_rules_that_never_fired_and_the_noisy_ones(site: Site) -> None:
    runtime = site.running.runtime
    fired = {h.rule_id for h in runtime.store.rule_hits(time.time() - 30 * 86400)}
    with site.login("vera") as client:
        html = client.get("/ui/rules").text
    rows = {
        rule_id: (state, row)
        for rule_id, state, row in re.findall(
            r'<tr data-rule="([^"]+)" data-state="([^"]+)"(.*?)</tr>', html, re.S
        )
    }
    assert set(rows) == {r.info.id for r in runtime.ruleset.all()}
    for rule in runtime.ruleset.all():
        state, row = rows[rule.id]
        assert state == ("enabled" if rule.generate else "correlation input")
        assert ("never fired" in row) == (rule.generate and rule.id not in fired)
    assert html.count("<strong>noisy</strong>") == min(5, len(fired))


def test_a_silence_made_from_an_alert_hides_alerts_like_it(site: Site) -> None:
    runtime = site.running.runtime
    alert_id = open_alert_ids(site)[0]
    alert = runtime.store.get_alert(alert_id)
    assert alert is not None
    with site.login("alice") as client:
        form = client.get("/ui/silences", params={"alert": alert_id}).text
        proposed = form.split('name="matchers">', 1)[1].split("</textarea>", 1)[0]
        assert f"rule_id=&#34;{alert.rule_id}&#34;" in proposed
        created = post_form(
            client,
            "/ui/silences",
            "/ui/silences",
            matchers=f'rule_id="{alert.rule_id}"',
            duration="1h",
            comment="known noise",
        )
        assert created.status_code == 303
    [silence] = runtime.store.silences()
    assert silence.comment == "known noise" and silence.created_by == "alice"
    # New alerts of that rule are stored as hidden by the silence, and the page lists them.
    with site.running.client("agent") as agent:
        agent.ingest(attack_lines(days_ago=1, seed=4), batch="again", node="server-2")
    with site.login("vera") as client:
        html = client.get("/ui/silences").text
    hidden = runtime.store.alerts(AlertQuery(filters={"silenced_by": (silence.id,)})).alerts
    assert hidden, "the silence hid nothing"
    for hid in hidden:
        assert f'href="/ui/alerts/{hid.id}"' in html
    with site.login("alice") as client:
        expired = post_form(client, "/ui/silences", f"/ui/silences/{silence.id}/expire")
    assert expired.status_code == 303
    assert runtime.store.silences(active_at=time.time()) == []


def test_the_event_page_shows_the_raw_event_with_secrets_redacted(site: Site) -> None:
    event = orjson.loads(attack_lines()[0])
    event.update(
        auditID="0b9e4f52-3f0e-4a47-a3b1-6a3e1e7c2d10",
        verb="create",
        objectRef={"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"},
        requestObject={
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "db"},
            "stringData": {"password": "hunter2-very-secret"},
        },
    )
    with site.running.client("agent") as agent:
        agent.ingest([orjson.dumps(event)], batch="secret", node="server-1")
    with site.login("vera") as client:
        html = client.get(f"/ui/events/{event['auditID']}").text
    raw = html.split('id="raw">', 1)[1].split("</pre>", 1)[0]
    assert "hunter2-very-secret" not in html
    assert "&#34;password&#34;: &#34;&lt;redacted&gt;&#34;" in raw


def test_the_report_page_shows_the_review_report_and_offers_every_format(site: Site) -> None:
    with site.login("vera") as client:
        html = client.get("/ui/reports", params={"period": "7d"}).text
        assert 'class="review-report panel"' in html
        for section in ("alerts", "new_identities", "rbac_changes", "pipeline_health"):
            assert f'id="{section}"' in html
        assert "<svg" in html
        pdf = client.get("/ui/reports", params={"period": "7d", "download": "pdf"})
        data = client.get("/ui/reports", params={"period": "7d", "download": "json"})
        bad = client.get("/ui/reports", params={"period": "forever"})
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf.headers["content-disposition"]
    report = orjson.loads(data.content)
    alerts = site.running.runtime.store.alert_counts("severity", report["period"]["start"])
    assert report["alerts"]["total"] == sum(alerts.values()) > 0
    assert bad.status_code == 422


def test_a_reviews_report_covers_its_period(site: Site) -> None:
    reviews = site.running.runtime.reviews
    assert reviews is not None
    review = reviews.open("weekly", "alice")
    with site.login("vera") as client:
        data = orjson.loads(
            client.get(f"/ui/reviews/{review.id}/report", params={"download": "json"}).content
        )
    assert data["period"]["start"] == review.period_start
    assert data["period"]["end"] <= review.period_end


def test_the_pipeline_page_shows_gaps_backend_errors_and_rejected_input(site: Site) -> None:
    now = time.time()
    error = {
        "kind": "k3watch.log/v1",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600)),
        "message": "Error in audit plugin 'webhook' affecting 17 audit events: connection refused",
        "level": "error",
        "host": "server-1",
        "_key": "k3s.log@42",
    }
    token = site.running.tokens["agent"]
    logged = post(
        site.url,
        token,
        orjson.dumps(error),
        batch="k3s-log",
        node="server-1",
        source="k3s",
        format="log",
    )
    broken = post(site.url, token, b'{"not json', batch="broken", node="server-2")
    assert logged.status_code == 200 and broken.status_code == 200
    with site.login("vera") as client:
        html = client.get("/ui/pipeline", params={"period": "7d"}).text
        bad = client.get("/ui/pipeline", params={"period": "never"})
    section = html.split('id="pipeline"', 1)[1]
    assert "Gaps of 10 minutes or more:" in section and "server-1" in section
    assert "17 audit events lost: 17 by the webhook backend" in section
    assert "Rejected input: 1" in section and "server-2" in section
    assert "Events per hour by node" in html
    assert bad.status_code == 422


def test_rules_disabled_in_the_configuration_are_listed_as_disabled(site: Site) -> None:
    runtime = site.running.runtime
    target = next(r for r in runtime.ruleset.event_rules if r.generate and not r.consumers)
    runtime.ruleset = load_rules(disabled=[target.id])  # what rules.disable loads
    with site.login("vera") as client:
        html = client.get("/ui/rules").text
    assert f'<tr data-rule="{target.id}" data-state="disabled"' in html
    assert "1 disabled" in html
