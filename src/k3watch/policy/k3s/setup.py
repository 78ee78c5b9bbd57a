"""``k3watch k3s setup``: plan the audit set-up of a K3s server, show it as a diff, apply it.

A plan is a list of changes (directories and files with their modes), the conflicts found in
the node's configuration (other files or the command line setting audit flags, a later drop-in
that would replace ours) and the reasons to refuse (a policy lint error, a bad webhook URL).
Nothing is written until :func:`apply_plan`, which never restarts K3s.

Safety, because a bad policy or flag makes K3s restart every 5 s: the policy is linted and
parsed the way the API server parses it before anything is written; every file is written to
a temporary file and renamed over the old one (a crash leaves the old file or the new one,
never half of one); the drop-in, the only file K3s reads by itself, is written last, so the
flags never name a file that is not there yet. Replaced files are kept as
``<name>.bak.<UTC timestamp>``: K3s ignores those, as their names do not end in ``.yaml``.
"""

from __future__ import annotations

import difflib
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from k3watch.durable import write_atomically
from k3watch.errors import K3watchError
from k3watch.policy.k3s import audit_policy
from k3watch.policy.k3s.apiserver import AUDIT_FLAGS, FlagValue, resolve_flags
from k3watch.policy.k3s.audit_policy import LintFinding
from k3watch.policy.k3s.config import read_config
from k3watch.policy.k3s.layout import (
    AUDIT_LOG,
    DROPIN_MODE,
    DROPIN_NAME,
    DROPIN_SUFFIX,
    LOG_DIR,
    LOG_DIR_MODE,
    POLICY_FILE,
    POLICY_MODE,
    SERVER_DIR,
    WEBHOOK_KUBECONFIG,
    WEBHOOK_MODE,
    Layout,
)
from k3watch.policy.k3s.process import ServerProcess, find_server
from k3watch.policy.k3s.render import audit_flags, dropin_text, webhook_kubeconfig_text
from k3watch.policy.k3s.render import webhook_problems as url_problems
from k3watch.policy.k3s.state import APISERVER_KEY

PROFILES = ("minimal", "recommended", "forensic")


@dataclass(frozen=True, slots=True)
class Change:
    """A directory or file set-up wants, and what is there now."""

    path: str  # node path
    kind: Literal["file", "dir"]
    mode: int | None  # None: any mode will do (a parent directory that may already exist)
    new: str | None = None  # file content
    old: str | None = None  # current content, None when the file does not exist
    exists: bool = False
    old_mode: int | None = None
    secret: bool = False  # holds a credential: its content is never shown

    @property
    def content_changes(self) -> bool:
        return self.kind == "file" and self.old != self.new

    @property
    def needed(self) -> bool:
        if not self.exists or self.content_changes:
            return True
        return self.mode is not None and self.old_mode != self.mode

    def describe(self) -> str:
        """One line: what applying does to this path."""
        mode = f" (mode {self.mode:04o})" if self.mode is not None else ""
        if self.secret and self.content_changes:
            mode += ", holds secrets: content not shown"
        noun = "directory" if self.kind == "dir" else "file"
        if not self.exists:
            return f"create {noun} {self.path}{mode}"
        if self.content_changes:
            return f"replace {self.path}{mode}, keeping a backup"
        return f"chmod {self.path}: {self.old_mode or 0:04o} → {self.mode or 0:04o}"

    def diff(self) -> str:
        """A unified diff of the file (empty for directories, mode-only changes and files
        holding secrets)."""
        if not self.content_changes or self.secret:
            return ""
        old = (self.old or "").splitlines(keepends=True)
        new = (self.new or "").splitlines(keepends=True)
        before = self.path if self.exists else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile=before, tofile=self.path))


@dataclass(frozen=True, slots=True)
class Conflict:
    """Something in the node's configuration that works against the set-up."""

    severity: Literal["error", "warning"]  # error: the set-up would not take effect
    message: str


@dataclass(slots=True)
class Plan:
    """Everything set-up would do on one node, and what stands in its way."""

    layout: Layout
    profile: str
    webhook: str | None
    dropin: str  # node path of the drop-in
    changes: list[Change] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # apply is refused while any remain
    lint: list[LintFinding] = field(default_factory=list)

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.needed]

    @property
    def effective(self) -> bool:
        """Whether the flags would be in force after a restart (no error-level conflict)."""
        return not any(c.severity == "error" for c in self.conflicts)


def plan_setup(
    layout: Layout, profile: str, webhook: str | None = None, webhook_token: str | None = None
) -> Plan:
    """What set-up would change on the node under ``layout.root``; nothing is written.

    ``webhook_token`` is the bearer token the API server sends to the webhook (written into
    its kubeconfig, which is then never shown in a diff)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    process = find_server(layout)
    if process is not None and process.config_file and process.config_file != layout.config_file:
        # K3s reads drop-ins next to the file it was started with, not next to the default.
        layout = Layout(layout.root, process.config_file)
    existing = _existing_dropins(layout)
    plan = Plan(layout, profile, webhook, _dropin_path(layout, existing))
    for other in existing[1:]:
        plan.conflicts.append(
            Conflict("warning", f"{other} is another k3watch audit drop-in: remove it")
        )
    if layout.looks_like_agent():
        plan.conflicts.append(
            Conflict(
                "warning",
                "only a K3s agent is installed here: agents run no API server and write no "
                "audit log; run set-up on every server node instead",
            )
        )

    if webhook is not None:
        config = read_config(layout)
        cidr = config.settings["service-cidr"].value if "service-cidr" in config.settings else None
        errors, warnings = url_problems(webhook, cidr)
        plan.conflicts.extend(Conflict("warning", w) for w in warnings)
        if errors:
            plan.refusals.extend(errors)
            return plan
    try:
        policy = audit_policy.generate(profile, webhook)
    except K3watchError as exc:
        plan.refusals.append(f"cannot generate the {profile} policy: {exc}")
        return plan
    plan.lint = audit_policy.lint(policy, POLICY_FILE)
    checked = audit_policy.review(policy, POLICY_FILE, coverage=False)
    if checked.parse_error:
        plan.refusals.append(f"the {profile} policy does not parse: {checked.parse_error}")
    plan.refusals.extend(f"policy lint error: {f.text}" for f in checked.errors)

    dropin = dropin_text(webhook is not None)
    plan.changes.append(dir_change(layout, SERVER_DIR, None))
    plan.changes.append(dir_change(layout, LOG_DIR, LOG_DIR_MODE))
    plan.changes.append(file_change(layout, POLICY_FILE, policy, POLICY_MODE))
    if webhook is not None:
        plan.changes.append(
            file_change(
                layout,
                WEBHOOK_KUBECONFIG,
                webhook_kubeconfig_text(webhook, webhook_token),
                WEBHOOK_MODE,
                secret=webhook_token is not None,
            )
        )
    plan.changes.append(dir_change(layout, layout.dropin_dir, None))
    plan.changes.append(file_change(layout, plan.dropin, dropin, DROPIN_MODE))
    plan.conflicts.extend(_conflicts(layout, plan.dropin, dropin, webhook is not None, process))
    return plan


def _existing_dropins(layout: Layout) -> list[str]:
    directory = layout.host(layout.dropin_dir)
    if not directory.is_dir():
        return []
    names = sorted(
        p.name
        for p in directory.iterdir()
        if p.is_file()
        and p.name.lower().endswith((f"{DROPIN_SUFFIX}.yaml", f"{DROPIN_SUFFIX}.yml"))
    )
    return [f"{layout.dropin_dir}/{name}" for name in names]


def _dropin_path(layout: Layout, existing: list[str]) -> str:
    """The drop-in set-up writes: the one an earlier run wrote (renamed or not), else ours."""
    return existing[0] if existing else f"{layout.dropin_dir}/{DROPIN_NAME}"


def dir_change(layout: Layout, path: str, mode: int | None) -> Change:
    """A directory at ``path`` (node path) with ``mode`` (None: any), compared with what is
    there."""
    host = layout.host(path)
    if host.is_dir():
        return Change(path, "dir", mode, exists=True, old_mode=host.stat().st_mode & 0o7777)
    return Change(path, "dir", mode)


def file_change(layout: Layout, path: str, text: str, mode: int, *, secret: bool = False) -> Change:
    """A file at ``path`` (node path) with ``text`` and ``mode``, compared with what is
    there; ``secret``: its content is never shown."""
    host = layout.host(path)
    try:
        old = host.read_text(encoding="utf-8")
        old_mode = host.stat().st_mode & 0o7777
    except FileNotFoundError:
        return Change(path, "file", mode, new=text, secret=secret)
    except (OSError, UnicodeDecodeError):
        # Unreadable or binary: replace it (the backup keeps it) rather than guess.
        old, old_mode = "", host.stat().st_mode & 0o7777
    return Change(
        path, "file", mode, new=text, old=old, exists=True, old_mode=old_mode, secret=secret
    )


def _conflicts(
    layout: Layout, dropin: str, text: str, webhook: bool, process: ServerProcess | None
) -> list[Conflict]:
    """Merge the configuration as K3s will after set-up, and explain every disagreement."""
    out: list[Conflict] = []
    after = read_config(layout, {dropin: text})
    out.extend(
        Conflict("warning", f"{err} — fix this file first, whatever set-up does")
        for err in after.errors
    )
    items = after.items(APISERVER_KEY)
    if process is not None:
        items.extend(process.apiserver_args)
    flags = resolve_flags(items)
    wanted = audit_flags(webhook)
    replacing = [
        s
        for s in after.steps(APISERVER_KEY)
        if s.op == "set" and s.location.source != dropin and _sorts_after(s.location.source, dropin)
    ]
    dropped = [name for name in wanted if name not in flags]
    if dropped:
        where = ", ".join(str(s.location) for s in replacing) or "a later file"
        out.append(
            Conflict(
                "error",
                f"{', '.join(dropped)} would be dropped: {where} sets '{APISERVER_KEY}' "
                f"without '+' and is read after {dropin}, which replaces every earlier value; "
                f"write '{APISERVER_KEY}+:' there",
            )
        )
    for name, value in wanted.items():
        flag = flags.get(name)
        if flag is None:
            continue
        if flag.location.source != dropin:
            out.append(_overridden(name, value, flag))
            continue
        for earlier in flag.shadowed:
            if earlier.location.source == dropin:
                continue
            out.append(
                Conflict(
                    "warning",
                    f"{earlier.location} also sets {name}={earlier.value}; the k3watch "
                    "drop-in comes later and wins, but two settings of one flag mislead the "
                    "next reader: remove that one",
                )
            )
    for name in AUDIT_FLAGS:
        if name not in wanted and name in flags:
            flag = flags[name]
            out.append(
                Conflict(
                    "warning",
                    f"{flag.location} sets {name}={flag.value}, which set-up does not manage: "
                    "check that it belongs with the new settings",
                )
            )
    return out


def _sorts_after(path: str, dropin: str) -> bool:
    """Whether ``path`` is a drop-in K3s reads after ``dropin`` (config.yaml comes first)."""
    if path.rpartition("/")[0] != dropin.rpartition("/")[0]:
        return False
    return Path(path).name.encode() > Path(dropin).name.encode()


def _overridden(name: str, value: str, flag: FlagValue) -> Conflict:
    """A wanted flag whose effective setting comes from elsewhere."""
    if flag.value == value:
        return Conflict(
            "warning",
            f"{name}={value} is also set by {flag.location}, which comes later: keep one",
        )
    why = (
        "the server's command line comes after every configuration file"
        if flag.location.source.startswith("/proc/")
        else "that file is read after the k3watch drop-in"
    )
    return Conflict(
        "error",
        f"{name} would be {flag.value} from {flag.location}, not {value}: {why}; remove it there",
    )


def apply_plan(plan: Plan, now: datetime | None = None) -> list[str]:
    """Write the pending changes (refused while the plan has refusals); returns what was done."""
    if plan.refusals:
        raise RuntimeError("refusing to apply: " + "; ".join(plan.refusals))
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    done: list[str] = []
    for change in plan.pending:
        host = plan.layout.host(change.path)
        if change.kind == "dir":
            host.mkdir(parents=True, exist_ok=True)
            if change.mode is not None:
                os.chmod(host, change.mode)
            done.append(change.describe())
            continue
        if not change.content_changes:
            os.chmod(host, change.mode or 0o600)
            done.append(change.describe())
            continue
        host.parent.mkdir(parents=True, exist_ok=True)
        line = change.describe()
        if change.exists:
            backup = _backup(host, stamp)
            line = f"replace {change.path} (backup: {plan.layout.node(backup)})"
        write_atomically(host, (change.new or "").encode("utf-8"), change.mode or 0o600)
        done.append(line)
    return done


def _backup(path: Path, stamp: str) -> Path:
    target = path.with_name(f"{path.name}.bak.{stamp}")
    counter = 1
    while target.exists():  # two runs in one second keep both backups
        target = path.with_name(f"{path.name}.bak.{stamp}.{counter}")
        counter += 1
    shutil.copy2(path, target)
    return target


def next_steps(plan: Plan) -> list[str]:
    """What the operator does after applying: restart (set-up never does), then verify."""
    restart = plan.layout.restart_command()
    watch = (
        "tail -f /var/log/k3s.log"
        if plan.layout.init_system() == "openrc"
        else "journalctl -u k3s -f"
    )
    return [
        f"restart K3s (k3watch never does): sudo {restart}",
        f"watch it come back: sudo {watch}  (a bad flag shows as a restart every 5 s; "
        f"to undo, delete {plan.dropin} and restart again)",
        "verify: sudo k3watch k3s check",
        f"see events arrive: sudo tail -f {AUDIT_LOG}",
        "on an HA cluster, run set-up on every server node: each writes its own audit log",
    ]
