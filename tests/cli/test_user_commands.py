"""``k3watch user``: web UI users from the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
from tests.cli.helpers import Invoke

from k3watch.server.tokens import Role
from k3watch.server.users import UserStore

PASSWORD = "a long enough password"


def test_add_then_log_in_with_the_password(tmp_path: Path, invoke: Invoke) -> None:
    data = str(tmp_path / "data")
    result = invoke(
        "user",
        "add",
        "alice",
        "--role",
        "analyst",
        "--password-stdin",
        "--data-dir",
        data,
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "added user alice (role analyst)" in result.output
    with UserStore(tmp_path / "data" / "users.sqlite") as users:
        found = users.authenticate("alice", PASSWORD)
        assert found is not None and found.role is Role.ANALYST
        assert users.authenticate("alice", "something else entirely") is None
    assert (tmp_path / "data" / "users.sqlite").stat().st_mode & 0o077 == 0


def test_the_password_is_asked_twice(tmp_path: Path, invoke: Invoke) -> None:
    data = str(tmp_path / "data")
    mismatch = invoke(
        "user",
        "add",
        "bob",
        "--role",
        "viewer",
        "--data-dir",
        data,
        input=f"{PASSWORD}\n{PASSWORD}x\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output


def test_passwd_role_list_and_remove(tmp_path: Path, invoke: Invoke) -> None:
    data = str(tmp_path / "data")
    invoke(
        "user",
        "add",
        "carol",
        "--role",
        "viewer",
        "--password-stdin",
        "--data-dir",
        data,
        input=PASSWORD + "\n",
    )
    assert (
        invoke(
            "user",
            "passwd",
            "carol",
            "--password-stdin",
            "--data-dir",
            data,
            input="an even longer password\n",
        ).exit_code
        == 0
    )
    assert invoke("user", "role", "carol", "admin", "--data-dir", data).exit_code == 0
    listed = invoke("user", "list", "--format", "json", "--data-dir", data)
    [entry] = orjson.loads(listed.stdout)
    assert (entry["name"], entry["role"]) == ("carol", "admin")
    with UserStore(tmp_path / "data" / "users.sqlite") as users:
        assert users.authenticate("carol", "an even longer password") is not None
    assert invoke("user", "remove", "carol", "--data-dir", data).exit_code == 0
    assert "no users" in invoke("user", "list", "--data-dir", data).output


def test_mistakes_are_one_line_errors_with_exit_status_2(tmp_path: Path, invoke: Invoke) -> None:
    data = str(tmp_path / "data")
    weak = invoke(
        "user",
        "add",
        "dave",
        "--role",
        "viewer",
        "--password-stdin",
        "--data-dir",
        data,
        input="short\n",
    )
    assert weak.exit_code == 2
    assert "error: the password must have at least 12 characters" in weak.output
    invoke(
        "user",
        "add",
        "dave",
        "--role",
        "viewer",
        "--password-stdin",
        "--data-dir",
        data,
        input=PASSWORD + "\n",
    )
    again = invoke(
        "user",
        "add",
        "dave",
        "--role",
        "viewer",
        "--password-stdin",
        "--data-dir",
        data,
        input=PASSWORD + "\n",
    )
    assert again.exit_code == 2 and "exists already" in again.output
    missing = invoke("user", "remove", "nobody", "--data-dir", data)
    assert missing.exit_code == 2 and "no user named 'nobody'" in missing.output
    bad_name = invoke(
        "user",
        "add",
        "-x",
        "--role",
        "viewer",
        "--password-stdin",
        "--data-dir",
        data,
        input=PASSWORD + "\n",
    )
    assert bad_name.exit_code == 2
