"""The admin page: users of the web UI and API tokens (the admin role only)."""

from __future__ import annotations

import time
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from k3watch.errors import UsageError
from k3watch.rules.extension import parse_duration
from k3watch.server.tokens import Role
from k3watch.server.users import USER_ROLES
from k3watch.web.app import Web
from k3watch.web.render import page


def install(app: FastAPI, web: Web) -> None:
    runtime = web.runtime

    async def admin_page(
        request: Request, message: str = "", kind: str = "ok", secret: str = "", status: int = 200
    ) -> Response:
        session = web.need(request, Role.ADMIN)
        return page(
            "admin.html",
            session,
            status,
            active="admin",
            users=await web.call(runtime.users.list),
            tokens=await web.call(runtime.tokens.list),
            now=time.time(),
            roles=[r.value for r in USER_ROLES],
            token_roles=[r.value for r in Role],
            secret=secret,
            message=message or request.query_params.get("done"),
            message_kind=kind,
        )

    @app.get("/ui/admin", include_in_schema=False)
    async def admin(request: Request) -> Response:
        return await admin_page(request)

    @app.post("/ui/admin/users", include_in_schema=False)
    async def users(request: Request) -> Response:
        session, form = await web.form(request, Role.ADMIN)
        name, action = form.get("name", "").strip(), form.get("action", "")
        try:
            if action == "add":
                await web.call(
                    runtime.users.add,
                    name,
                    Role.parse(form.get("role", "")),
                    form.get("password", ""),
                )
                done = f"User {name} added"
            elif action == "passwd":
                await web.call(runtime.users.set_password, name, form.get("password", ""))
                done = f"Password of {name} changed"
            elif action == "role":
                await web.call(runtime.users.set_role, name, Role.parse(form.get("role", "")))
                done = f"Role of {name} changed"
            elif action == "remove":
                if name == session.name and session.kind == "user":
                    raise UsageError("you cannot remove yourself")
                await web.call(runtime.users.remove, name)
                done = f"User {name} removed"
            else:
                raise UsageError(f"unknown action {action!r}")
        except UsageError as exc:
            return await admin_page(request, str(exc), "error", status=422)
        return RedirectResponse(f"/ui/admin?done={quote(done)}", status_code=303)

    @app.post("/ui/admin/tokens", include_in_schema=False)
    async def tokens(request: Request) -> Response:
        _, form = await web.form(request, Role.ADMIN)
        action = form.get("action", "")
        try:
            if action == "create":
                expires_in = form.get("expires", "").strip()
                expires = time.time() + parse_duration(expires_in) if expires_in else None
                token, secret = await web.call(
                    lambda: runtime.tokens.create(
                        form.get("name", "").strip(),
                        Role.parse(form.get("role", "")),
                        expires=expires,
                    )
                )
                # The secret is shown once, on this response, and kept nowhere.
                return await admin_page(
                    request, f"Token {token.name} created: copy its secret now", secret=secret
                )
            if action == "revoke":
                token = await web.call(runtime.tokens.revoke, form.get("id", ""))
                return RedirectResponse(
                    f"/ui/admin?done={quote(f'Token {token.name} revoked')}", 303
                )
            raise UsageError(f"unknown action {action!r}")
        except (UsageError, ValueError) as exc:
            return await admin_page(request, str(exc), "error", status=422)
