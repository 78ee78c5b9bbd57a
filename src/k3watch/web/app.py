"""The web UI's wiring: the login and logout pages, the checks every page makes (session, role,
CSRF), and the error pages. The pages themselves are in :mod:`k3watch.web.pages` and
:mod:`k3watch.web.admin`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from k3watch.rules.extension import parse_duration
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role
from k3watch.web.render import error_page, page
from k3watch.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_FORM_SECONDS,
    BadForm,
    Forbidden,
    NotLoggedIn,
    Session,
    Sessions,
    load_secret,
)

T = TypeVar("T")


class PageError(Exception):
    """What a page says instead of itself: nothing changed, not found (an error page)."""

    def __init__(self, status: int, heading: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.heading = heading
        self.detail = detail


@dataclass
class Web:
    """What the pages share: the runtime and the sessions."""

    runtime: Runtime
    sessions: Sessions

    def need(self, request: Request, role: Role) -> Session:
        """The caller's session when its role allows ``role`` (else NotLoggedIn, Forbidden)."""
        session = self.sessions.require(request.cookies.get(COOKIE), role)
        request.state.session = session
        return session

    async def form(self, request: Request, role: Role) -> tuple[Session, dict[str, Any]]:
        """A posted form from a session with ``role``, its CSRF token checked. Values named
        ``ids`` (or ending in ``[]``) keep every value; the others the last one."""
        session = self.need(request, role)
        data = await request.form()
        fields: dict[str, Any] = {}
        for key in data:
            values = [v for v in data.getlist(key) if isinstance(v, str)]
            fields[key] = values if key == "ids" else (values[-1] if values else "")
        Sessions.check_form(session, fields.get("csrf"))
        return session, fields

    @staticmethod
    async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call (the store, password hashing) off the event loop."""
        return await run_in_threadpool(function, *args, **kwargs)


def install(app: FastAPI, runtime: Runtime) -> None:
    """Serve the web UI under ``/ui/`` on ``app``."""
    web_config = runtime.config.server.web
    sessions = Sessions(
        load_secret(Path(runtime.config.server.data_dir)),
        runtime.users,
        runtime.tokens,
        lifetime=parse_duration(web_config.session_lifetime),
        attempts_per_minute=web_config.login_attempts_per_minute,
    )
    web = Web(runtime, sessions)
    _errors(app)
    _login(app, web)

    from k3watch.web import admin, pages, reviews

    pages.install(app, web)
    reviews.install(app, web)
    admin.install(app, web)


def _errors(app: FastAPI) -> None:
    async def not_logged_in(request: Request, exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        session = exc.session if isinstance(exc, Forbidden) else None
        return error_page(session, 403, "Not allowed", str(exc))

    async def bad_form(request: Request, exc: Exception) -> Response:
        session = getattr(request.state, "session", None)
        return error_page(
            session,
            403,
            "The form has expired",
            "The page was opened in another session or too long ago: reload it and try again.",
        )

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        session = getattr(request.state, "session", None)
        return error_page(session, exc.status, exc.heading, exc.detail)

    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(NotLoggedIn, not_logged_in)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(BadForm, bad_form)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of the UI, never another site."""
    if not target:
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/") or "\\" in target:
        return "/ui/"
    return target


def _login(app: FastAPI, web: Web) -> None:
    sessions = web.sessions

    def login_page(
        next_page: str, error: str = "", username: str = "", status: int = 200
    ) -> Response:
        csrf, cookie = sessions.login_form()
        response = page(
            "login.html", None, status, csrf=csrf, next=next_page, error=error, username=username
        )
        response.set_cookie(
            LOGIN_COOKIE,
            cookie,
            max_age=LOGIN_FORM_SECONDS,
            httponly=True,
            samesite="strict",
            path="/ui/login",
        )
        return response

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    @app.get("/ui/login", include_in_schema=False)
    async def login_form(request: Request, next: str = "/ui/") -> Response:
        return login_page(safe_next(next))

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        target = safe_next(fields.get("next"))
        username = fields.get("username", "").strip()
        if not sessions.login_form_valid(request.cookies.get(LOGIN_COOKIE), fields.get("csrf", "")):
            return login_page(target, "The login form expired: try again.", username, 403)
        address = request.client.host if request.client else "unknown"
        wait = sessions.refused(address, username)
        if wait > 0:
            response = login_page(
                target, f"Too many failed logins: wait {wait:.0f} s.", username, 429
            )
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        if fields.get("method") == "token":
            cookie = await web.call(sessions.with_token, fields.get("token", ""))
            failure = "Unknown, revoked or expired token (agent tokens cannot log in)."
        else:
            cookie = await web.call(sessions.with_password, username, fields.get("password", ""))
            failure = "Wrong user name or password."
        if cookie is None:
            sessions.failed(address, username)
            web.runtime.counters.inc("web_logins", reason="failed")
            return login_page(target, failure, username, 401)
        web.runtime.counters.inc("web_logins", reason="ok")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(sessions.lifetime),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/ui/",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return response

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session, _ = await web.form(request, Role.VIEWER)
        await web.call(sessions.end, session)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui/")
        return response
