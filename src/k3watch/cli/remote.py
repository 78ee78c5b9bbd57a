"""Commands that talk to a k3watch server: ``search``, ``alerts``, ``silence``.

``--server`` and ``--token`` (or ``$K3WATCH_SERVER`` / ``$K3WATCH_TOKEN``), ``--ca`` for a
private CA; ``--format table|json`` everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from k3watch.cli.app import main
from k3watch.cli.common import stderr_console, write_json
from k3watch.errors import K3watchError
from k3watch.store.base import SEARCH_FIELDS

F = TypeVar("F", bound=Callable[..., Any])


def server_options(func: F) -> F:
    func = click.option(
        "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
    )(func)
    func = click.option(
        "--ca",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="K3WATCH_CA",
        default=None,
        help="CA certificate that signed the server's ($K3WATCH_CA).",
    )(func)
    func = click.option(
        "--token", envvar="K3WATCH_TOKEN", required=True, help="API token ($K3WATCH_TOKEN)."
    )(func)
    return click.option(
        "--server",
        envvar="K3WATCH_SERVER",
        default="https://127.0.0.1:8443",
        show_default=True,
        help="Server URL ($K3WATCH_SERVER).",
    )(func)


def _client(server: str, token: str, ca: Path | None) -> Any:
    from k3watch.client import Client

    try:
        return Client(server, token, ca=ca)
    except K3watchError as exc:
        _fail(exc)


def _fail(exc: Exception) -> None:
    stderr_console().print(f"error: {exc}", highlight=False)
    sys.exit(2)


def _call(function: Callable[[], Any]) -> Any:
    try:
        return function()
    except K3watchError as exc:
        _fail(exc)


def _table(columns: list[str], rows: list[list[str]]) -> None:
    table = Table(*columns, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*row)
    Console(highlight=False, soft_wrap=False).print(table)


@main.command(name="search")
@server_options
@click.option("--start", default="24h", show_default=True, help="RFC 3339, epoch, or 24h ago.")
@click.option("--end", default=None, help="RFC 3339, epoch, or a duration ago.")
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="FIELD=VALUE",
    help=f"A field filter; repeatable. Fields: {', '.join(SEARCH_FIELDS)}.",
)
@click.option("--limit", default=50, show_default=True)
@click.option("--cursor", default=None, help="Continue from a previous page.")
@click.argument("words", nargs=-1)
def search_command(
    server: str,
    token: str,
    ca: Path | None,
    fmt: str,
    start: str,
    end: str | None,
    where: tuple[str, ...],
    limit: int,
    cursor: str | None,
    words: tuple[str, ...],
) -> None:
    """Search stored events: field filters, and WORDS in the request URI or message."""
    filters: dict[str, list[str]] = {}
    for item in where:
        name, sep, value = item.partition("=")
        if not sep or name not in SEARCH_FIELDS:
            raise click.UsageError(
                f"--where {item!r}: expected FIELD=VALUE, FIELD one of {', '.join(SEARCH_FIELDS)}"
            )
        filters.setdefault(name, []).append(value)
    with _client(server, token, ca) as client:
        page = _call(
            lambda: client.search(
                start=start,
                end=end,
                q=" ".join(words) or None,
                limit=limit,
                cursor=cursor,
                **filters,
            )
        )
    if fmt == "json":
        write_json(page)
        return
    rows = []
    for item in page["events"]:
        raw = item["event"]
        user = (raw.get("user") or {}).get("username", "") if isinstance(raw, dict) else ""
        status = (raw.get("responseStatus") or {}).get("code", "")
        text = raw.get("requestURI") or raw.get("message") or ""
        rows.append(
            [
                item["time"][:19],
                item["node"],
                user,
                str(raw.get("verb", "")),
                str(status),
                text[:90],
            ]
        )
    _table(["time", "node", "user", "verb", "code", "request / message"], rows)
    if page.get("cursor"):
        click.echo(f"more: --cursor {page['cursor']}", err=True)


@main.group(name="alerts")
def alerts_group() -> None:
    """Alerts on a server: list, show, and triage (ack, resolve, false-positive, assign, note)."""


@alerts_group.command(name="list")
@server_options
@click.option("--status", multiple=True, help="open, acknowledged, resolved, false_positive.")
@click.option("--severity", multiple=True)
@click.option("--rule", "rule_id", multiple=True, help="Rule id.")
@click.option("--cluster", multiple=True)
@click.option("--namespace", multiple=True)
@click.option("--limit", default=50, show_default=True)
def alerts_list(
    server: str,
    token: str,
    ca: Path | None,
    fmt: str,
    status: tuple[str, ...],
    severity: tuple[str, ...],
    rule_id: tuple[str, ...],
    cluster: tuple[str, ...],
    namespace: tuple[str, ...],
    limit: int,
) -> None:
    """Alerts, most recently seen first."""
    filters = {
        "status": status,
        "severity": severity,
        "rule_id": rule_id,
        "cluster": cluster,
        "namespace": namespace,
    }
    with _client(server, token, ca) as client:
        page = _call(lambda: client.alerts(limit=limit, **{k: v for k, v in filters.items() if v}))
    if fmt == "json":
        write_json(page)
        return
    _table(
        ["id", "last seen", "severity", "status", "count", "title", "summary"],
        [
            [
                str(a["id"]),
                a["last_seen"][:19],
                a["severity"],
                a["status"] + (" (silenced)" if a["silenced_by"] else ""),
                str(a["count"]),
                a["title"],
                a["summary"][:70],
            ]
            for a in page["alerts"]
        ],
    )


@alerts_group.command(name="show")
@server_options
@click.argument("alert_id", type=int)
def alerts_show(server: str, token: str, ca: Path | None, fmt: str, alert_id: int) -> None:
    """One alert with its events and history."""
    with _client(server, token, ca) as client:
        alert = _call(lambda: client.alert(alert_id))
    if fmt == "json":
        write_json(alert)
        return
    out = click.echo
    out(f"#{alert['id']} {alert['title']} [{alert['severity']}, {alert['status']}]")
    out(f"  {alert['summary']}")
    out(f"  rule {alert['rule_id']}  cluster {alert['cluster']}  count {alert['count']}")
    out(f"  first {alert['first_seen']}  last {alert['last_seen']}")
    if alert["assignee"]:
        out(f"  assigned to {alert['assignee']}")
    if alert["event_keys"]:
        out("  events: " + ", ".join(alert["event_keys"][:10]))
    for change in alert["history"]:
        note = f": {change['note']}" if change["note"] else ""
        out(f"  {change['time'][:19]} {change['actor']} {change['action']}{note}")


def _act(client: Any, alert_id: int, action: str, note: str) -> Any:
    return _call(lambda: client.act(alert_id, action, note))


def _triage(name: str, action: str, doc: str) -> None:
    @alerts_group.command(name=name, help=doc)
    @server_options
    @click.argument("alert_ids", type=int, nargs=-1, required=True)
    @click.option("--note", "-m", default="", help="Why (kept in the alert's history).")
    def command(
        server: str, token: str, ca: Path | None, fmt: str, alert_ids: tuple[int, ...], note: str
    ) -> None:
        with _client(server, token, ca) as client:
            results = [_act(client, i, action, note) for i in alert_ids]
        if fmt == "json":
            write_json(results)
        else:
            for alert in results:
                click.echo(f"#{alert['id']} {alert['status']}: {alert['title']}")


_triage("ack", "ack", "Acknowledge alerts (someone is looking).")
_triage("resolve", "resolve", "Resolve alerts.")
_triage("false-positive", "false_positive", "Mark alerts as false positives.")
_triage("reopen", "reopen", "Reopen alerts.")
_triage("note", "note", "Add a note to alerts.")


@alerts_group.command(name="assign")
@server_options
@click.argument("alert_id", type=int)
@click.argument("assignee")
@click.option("--note", "-m", default="")
def alerts_assign(
    server: str, token: str, ca: Path | None, fmt: str, alert_id: int, assignee: str, note: str
) -> None:
    """Assign an alert to a person."""
    with _client(server, token, ca) as client:
        alert = _call(lambda: client.act(alert_id, "assign", note, assignee))
    if fmt == "json":
        write_json(alert)
    else:
        click.echo(f"#{alert['id']} assigned to {alert['assignee']}")


@main.group(name="silence")
def silence_group() -> None:
    """Silences on a server: matching alerts are stored but not delivered until it expires."""


@silence_group.command(name="add")
@server_options
@click.argument("matchers", nargs=-1, required=True)
@click.option("--duration", "-d", default="2h", show_default=True)
@click.option("--comment", "-c", required=True, help="Why (shown to everyone).")
def silence_add(
    server: str,
    token: str,
    ca: Path | None,
    fmt: str,
    matchers: tuple[str, ...],
    duration: str,
    comment: str,
) -> None:
    """Silence alerts matching every MATCHER (name=value, name!=value, name=~regex, name!~regex;
    names: rule_id, rule, severity, cluster, namespace, user, tag, or a group field)."""
    with _client(server, token, ca) as client:
        silence = _call(lambda: client.add_silence(matchers, duration, comment))
    if fmt == "json":
        write_json(silence)
    else:
        click.echo(
            f"silence {silence['id']} until {silence['ends']}: {', '.join(silence['matchers'])}"
        )


@silence_group.command(name="list")
@server_options
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
def silence_list(server: str, token: str, ca: Path | None, fmt: str, show_all: bool) -> None:
    """Silences (active ones unless --all)."""
    with _client(server, token, ca) as client:
        found = _call(lambda: client.silences(active=not show_all))
    if fmt == "json":
        write_json(found)
        return
    _table(
        ["id", "ends", "by", "matchers", "comment"],
        [
            [s["id"], s["ends"][:19], s["created_by"], ", ".join(s["matchers"]), s["comment"]]
            for s in found
        ],
    )


@silence_group.command(name="expire")
@server_options
@click.argument("silence_id")
def silence_expire(server: str, token: str, ca: Path | None, fmt: str, silence_id: str) -> None:
    """End a silence now."""
    with _client(server, token, ca) as client:
        silence = _call(lambda: client.expire_silence(silence_id))
    if fmt == "json":
        write_json(silence)
    else:
        click.echo(f"silence {silence['id']} expired at {silence['ends']}")
