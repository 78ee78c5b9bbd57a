"""``k3watch k3s check``: every audit-logging check on one node, gathered into a report.

The report holds the sources read, each audit flag's configured and running value with where
it came from, and the results: the CIS checks (``cis``), the state of the configuration itself
(``config``: unreadable files, a restart still owed), file permissions (``permissions``) and
the webhook set-up (``webhook``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from k3watch.policy.k3s import audit_policy
from k3watch.policy.k3s.apiserver import AUDIT_FLAGS, FlagValue
from k3watch.policy.k3s.audit_policy import PolicyReview
from k3watch.policy.k3s.cis import (
    BENCHMARK,
    BENCHMARK_TEXT,
    FLAG_CHECKS,
    Result,
    Status,
    describe,
    evaluate_flag,
    evaluate_policy_coverage,
    evaluate_policy_file,
)
from k3watch.policy.k3s.layout import (
    AUDIT_LOG_MODE,
    DROPIN_MODE,
    LOG_DIR_MODE,
    POLICY_MODE,
    WEBHOOK_MODE,
    Layout,
)
from k3watch.policy.k3s.render import webhook_problems
from k3watch.policy.k3s.state import NodeState, Source, gather


@dataclass(frozen=True, slots=True)
class FlagRow:
    """One audit flag as configured and as running, and whether the two agree."""

    name: str
    configured: FlagValue | None
    running: FlagValue | None
    running_known: bool

    @property
    def agree(self) -> bool:
        if not self.running_known:
            return True
        return (self.configured.value if self.configured else None) == (
            self.running.value if self.running else None
        )


@dataclass(slots=True)
class CheckReport:
    """Everything ``k3watch k3s check`` found on one node."""

    root: str
    benchmark: str = BENCHMARK
    benchmark_text: str = BENCHMARK_TEXT
    sources: list[Source] = field(default_factory=list)
    flags: list[FlagRow] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    policy: PolicyReview | None = None

    @property
    def failed(self) -> bool:
        return any(r.status is Status.FAIL for r in self.results)

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for result in self.results:
            counts[result.status.value] += 1
        return counts


def run_check(layout: Layout, journal_file: Path | None = None) -> CheckReport:
    """Gather the node's state and evaluate every check."""
    state = gather(layout, journal_file)
    report = CheckReport(root=str(layout.root))
    report.sources = state.sources
    report.flags = [
        FlagRow(name, *state.flag(name), running_known=state.running is not None)
        for name in AUDIT_FLAGS
        if any(state.flag(name))
    ]
    readable, review = _policy(state)
    report.policy = review
    report.results.extend(evaluate_flag(check, state) for check in FLAG_CHECKS)
    report.results.append(evaluate_policy_file(state, readable))
    report.results.append(evaluate_policy_coverage(review))
    report.results.extend(_config_results(state, report.flags))
    report.results.extend(_permission_results(state))
    report.results.extend(_webhook_results(state))
    return report


def _policy(state: NodeState) -> tuple[dict[str, str], PolicyReview | None]:
    """Which policy paths are readable, and the review of the one the configuration names."""
    readable: dict[str, str] = {}
    texts: dict[str, str] = {}
    for flag in state.flag("audit-policy-file"):
        if flag is None or not flag.value or flag.value in readable:
            continue
        try:
            texts[flag.value] = state.layout.host(flag.value).read_text(encoding="utf-8")
            readable[flag.value] = ""
        except FileNotFoundError:
            readable[flag.value] = "the file does not exist: the API server will not start"
        except (OSError, UnicodeDecodeError) as exc:
            readable[flag.value] = f"cannot read it: {exc}"
    configured, running = state.flag("audit-policy-file")
    chosen = configured or running
    if chosen is None or chosen.value not in texts:
        return readable, None
    return readable, audit_policy.review(texts[chosen.value], chosen.value)


def _config_results(state: NodeState, rows: list[FlagRow]) -> list[Result]:
    out: list[Result] = []
    errors = [str(e) for e in state.config.errors]
    warnings = [str(w) for w in state.config.warnings]
    status = Status.FAIL if errors else Status.WARN if warnings else Status.PASS
    files = [f"read {path}" for path in state.config.files] or ["no configuration file"]
    out.append(
        Result(
            "config-files",
            "config",
            "K3s configuration files parse",
            status,
            tuple(files + errors + warnings),
            "fix the YAML in the files named: K3s refuses to start with a broken one"
            if errors
            else "",
        )
    )
    if state.running is None:
        note = next((s.note for s in state.sources if s.kind == "journal"), "")
        out.append(
            Result(
                "running-flags",
                "config",
                "Flags of the running API server are known",
                Status.WARN,
                (
                    f"no 'Running kube-apiserver' line: {note}",
                    "the CIS results are from the configuration only",
                ),
                "run on the server node with access to the journal (or pass --journal-file)",
            )
        )
        if state.process is None:
            return out  # nothing running to compare the configuration with
    differing = [r for r in rows if not r.agree]
    details = [
        f"{r.name}: {describe('configured', r.configured)}; {describe('running', r.running)}"
        for r in differing
    ]
    details.extend(f"{path} changed after K3s started" for path in state.changed_since_start)
    policy = _policy_changed(state)
    if policy:
        details.append(policy)
    out.append(
        Result(
            "restart",
            "config",
            "The running API server runs with the current configuration",
            Status.WARN if details else Status.PASS,
            tuple(details) or ("no configuration change since K3s started",),
            f"restart K3s to apply the configuration: sudo {state.layout.restart_command()}"
            if details
            else "",
        )
    )
    return out


def _policy_changed(state: NodeState) -> str:
    started = state.started
    configured, _ = state.flag("audit-policy-file")
    if started is None or configured is None:
        return ""
    try:
        mtime = state.layout.host(configured.value).stat().st_mtime
    except OSError:
        return ""
    if datetime.fromtimestamp(mtime, tz=UTC) > started:
        return f"{configured.value} changed after K3s started (the policy is read at start)"
    return ""


def _mode_result(state: NodeState, key: str, title: str, path: str, expected: int) -> Result:
    host = state.layout.host(path)
    try:
        mode = host.stat().st_mode & 0o777
    except OSError:
        return Result(key, "permissions", title, Status.SKIP, (f"{path} does not exist",))
    extra = mode & ~expected
    detail = f"{path}: mode {mode:04o} (expected {expected:04o} or stricter)"
    if extra:
        return Result(
            key,
            "permissions",
            title,
            Status.FAIL,
            (detail,),
            f"sudo chmod {expected:04o} {path}",
        )
    return Result(key, "permissions", title, Status.PASS, (detail,))


def _permission_results(state: NodeState) -> list[Result]:
    out: list[Result] = []
    policy, _ = state.flag("audit-policy-file")
    if policy is not None and policy.value:
        out.append(
            _mode_result(
                state,
                "policy-file",
                "Audit policy file is not readable by others",
                policy.value,
                POLICY_MODE,
            )
        )
    log, _ = state.flag("audit-log-path")
    if log is not None and log.value not in ("", "-"):
        log_dir = log.value.rpartition("/")[0] or "/"
        out.append(
            _mode_result(state, "log-dir", "Audit log directory is 0700", log_dir, LOG_DIR_MODE)
        )
        audit_log = _mode_result(
            state, "audit-log", "Audit log file is 0600", log.value, AUDIT_LOG_MODE
        )
        out.append(audit_log)
    sources = sorted(
        {
            flag.location.source
            for name in AUDIT_FLAGS
            if (flag := state.configured.get(name)) is not None
            and not flag.location.source.startswith("/proc/")
        }
    )
    for path in sources:
        out.append(
            _mode_result(
                state, f"config:{path}", "File setting audit flags is 0600", path, DROPIN_MODE
            )
        )
    hook, _ = state.flag("audit-webhook-config-file")
    if hook is not None and hook.value:
        out.append(
            _mode_result(
                state,
                "webhook-kubeconfig",
                "Audit webhook kubeconfig is 0600",
                hook.value,
                WEBHOOK_MODE,
            )
        )
    return out


def _webhook_results(state: NodeState) -> list[Result]:
    hook, running = state.flag("audit-webhook-config-file")
    flag = hook or running
    if flag is None or not flag.value:
        return []
    title = "Audit webhook kubeconfig names a receiver the API server can reach"
    details = [describe("configured", hook)]
    for name in ("audit-webhook-batch-max-size", "audit-webhook-batch-max-wait"):
        value, _ = state.flag(name)
        details.append(describe("configured", value))
    try:
        data: Any = yaml.safe_load(state.layout.host(flag.value).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [
            Result(
                "webhook",
                "webhook",
                title,
                Status.FAIL,
                (*details, f"{flag.value} does not exist: the API server will not start"),
                "run `k3watch k3s setup --webhook URL --apply` or remove the webhook flags",
            )
        ]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [
            Result(
                "webhook",
                "webhook",
                title,
                Status.FAIL,
                (*details, f"{flag.value} cannot be read as YAML: {exc}"),
                "rewrite it with `k3watch k3s setup --webhook URL --apply`",
            )
        ]
    servers = _kubeconfig_servers(data)
    if not servers:
        return [
            Result(
                "webhook",
                "webhook",
                title,
                Status.FAIL,
                (*details, f"{flag.value} names no cluster server URL"),
                "rewrite it with `k3watch k3s setup --webhook URL --apply`",
            )
        ]
    cidr = state.config.settings.get("service-cidr")
    problems: list[str] = []
    for url in servers:
        details.append(f"receiver: {url}")
        errors, warnings = webhook_problems(url, cidr.value if cidr else None)
        problems.extend(errors + warnings)
    status = Status.WARN if problems else Status.PASS
    fix = "point the kubeconfig at an address of this host (the k3watch agent on this node)"
    return [
        Result(
            "webhook", "webhook", title, status, tuple(details + problems), fix if problems else ""
        )
    ]


def _kubeconfig_servers(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return []
    out = []
    for entry in data.get("clusters") or []:
        cluster = entry.get("cluster") if isinstance(entry, dict) else None
        if isinstance(cluster, dict) and isinstance(cluster.get("server"), str):
            out.append(cluster["server"])
    return out
