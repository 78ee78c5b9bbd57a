"""A real server with a generated attack day in it, users of each role, and logged-in HTTP
clients; the browser tests drive Debian's Chromium through Playwright on top of it."""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.server.conftest import Running, StartServer, start_server  # noqa: F401
from tests.server.test_server_ingest import lines

from k3watch.sample import generate_tagged_events
from k3watch.server.tokens import Role

PASSWORD = "correct horse battery staple"
USERS = {"vera": Role.VIEWER, "alice": Role.ANALYST, "adam": Role.ADMIN}


@dataclass
class Site:
    running: Running

    @property
    def url(self) -> str:
        return self.running.url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    @contextmanager
    def login(self, name: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
        """A client logged in as ``name`` (its cookie jar holds the session)."""
        with self.client() as client:
            response = post_login(client, username=name, password=password)
            assert response.status_code == 303, response.text
            yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def post_login(client: httpx.Client, **fields: str) -> httpx.Response:
    """Open the login page (for its form token and cookie) and post the form."""
    form = client.get("/ui/login")
    data = {"csrf": csrf_of(form.text), "next": "/ui/", "method": "password", **fields}
    return client.post("/ui/login", data=data)


def post_form(client: httpx.Client, page: str, target: str, **fields: object) -> httpx.Response:
    """Post a form to ``target`` the way the page at ``page`` would (with its session's CSRF
    token)."""
    token = csrf_of(client.get(page).text)
    return client.post(target, data={"csrf": token, **fields})


@functools.cache
def attack_lines(days_ago: int = 2, seed: int = 3) -> list[bytes]:
    """The attack events of a generated day that started ``days_ago`` days ago, at midnight
    UTC (made once per test process), so that they fall in the pages' default periods."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=days_ago)
    return lines(
        [e for e, scenario in generate_tagged_events(days=1.0, seed=seed, start=start) if scenario]
    )


@pytest.fixture
def site(start_server: StartServer) -> Iterator[Site]:  # noqa: F811
    running = start_server()
    for name, role in USERS.items():
        running.runtime.users.add(name, role, PASSWORD)
    with running.client("agent") as agent:
        agent.ingest(attack_lines(), batch="attacks", node="server-1")
    yield Site(running)


def open_alert_ids(site: Site) -> list[int]:
    with site.running.client("viewer") as viewer:
        return [a["id"] for a in viewer.alerts(status="open")["alerts"]]


# -- the browser ---------------------------------------------------------------------------------

ARTIFACTS = Path(__file__).parents[2] / "build" / "test-artifacts"
# Without the background-networking flags Chromium tries to reach Google's hosts at start;
# a machine without internet access refuses those connections, noisily.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not installed: 'make test' installs it (scripts/install-test-deps.sh)"
        )
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[FAILED] = report.failed


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser page; a screenshot of it is kept in build/test-artifacts when the test
    fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    if request.node.stash.get(FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
