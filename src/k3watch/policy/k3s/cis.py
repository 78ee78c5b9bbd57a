"""The CIS audit-logging checks, numbered as in the K3s CIS benchmark (k3s-cis-1.10).

The numbers follow the CIS Kubernetes Benchmark v1.10 as applied to K3s in the K3s CIS
self-assessment guide and kube-bench's ``k3s-cis-1.10`` configuration; ``k3s-cis-1.9`` numbers
these checks the same, ``k3s-cis-1.8`` (which still lists SecurityContextDeny as 1.2.12)
numbers the four 1.2 checks one higher, 1.2.17–1.2.20.

Each flag check is evaluated on every view of the flags that is known: the configuration (what
the next start gets) and the running API server (its ``Running kube-apiserver`` line). A check
passes only when every known view passes, so a configuration that is right but not yet
restarted into, or a running server whose configuration has since been broken, both fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from k3watch.policy.k3s.apiserver import FlagValue
from k3watch.policy.k3s.audit_policy import PolicyReview
from k3watch.policy.k3s.state import NodeState

BENCHMARK = "k3s-cis-1.10"
BENCHMARK_TEXT = (
    "CIS Kubernetes Benchmark v1.10 as numbered for K3s (kube-bench k3s-cis-1.10; "
    "k3s-cis-1.9 uses the same numbers, k3s-cis-1.8 numbers the 1.2 checks 1.2.17-1.2.20)"
)
DROPIN_HINT = "k3watch k3s setup --apply writes it in a config.yaml.d drop-in"


class Status(StrEnum):
    """The outcome of one check; only ``fail`` makes ``k3watch k3s check`` exit non-zero."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Result:
    """One check's outcome, what it saw (with where each value came from) and how to fix it."""

    id: str
    group: str  # "cis", "policy", "permissions", "webhook", "config"
    title: str
    status: Status
    details: tuple[str, ...] = ()
    fix: str = ""


@dataclass(frozen=True, slots=True)
class FlagCheck:
    """A CIS check on one API-server flag: set at all, or set to at least ``minimum``."""

    id: str
    title: str
    flag: str
    minimum: int | None
    fix: str


FLAG_CHECKS = (
    FlagCheck(
        "1.2.16",
        "Ensure that the --audit-log-path argument is set",
        "audit-log-path",
        None,
        "add audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log to kube-apiserver-arg "
        f"({DROPIN_HINT}), then restart K3s",
    ),
    FlagCheck(
        "1.2.17",
        "Ensure that the --audit-log-maxage argument is set to 30 or as appropriate",
        "audit-log-maxage",
        30,
        f"set audit-log-maxage=30 (days) in kube-apiserver-arg ({DROPIN_HINT}), then restart",
    ),
    FlagCheck(
        "1.2.18",
        "Ensure that the --audit-log-maxbackup argument is set to 10 or as appropriate",
        "audit-log-maxbackup",
        10,
        f"set audit-log-maxbackup=10 (files) in kube-apiserver-arg ({DROPIN_HINT}), then restart",
    ),
    FlagCheck(
        "1.2.19",
        "Ensure that the --audit-log-maxsize argument is set to 100 or as appropriate",
        "audit-log-maxsize",
        100,
        f"set audit-log-maxsize=100 (MB) in kube-apiserver-arg ({DROPIN_HINT}), then restart",
    ),
)

POLICY_FILE_ID = "3.2.1"
POLICY_FILE_TITLE = "Ensure that a minimal audit policy is created"
POLICY_COVERAGE_ID = "3.2.2"
POLICY_COVERAGE_TITLE = "Ensure that the audit policy covers key security concerns"


def describe(view: str, flag: FlagValue | None) -> str:
    """``configured: name=value (file:line)``, with the settings it overrides."""
    if flag is None:
        return f"{view}: not set"
    text = f"{view}: {flag.name}={flag.value} (from {flag.location})"
    for item in flag.shadowed:
        text += f"; overrides {item.value!r} from {item.location}"
    return text


def views(state: NodeState, name: str) -> list[tuple[str, FlagValue | None]]:
    """The known views of one flag: configured always, running when the log line was found."""
    configured, running = state.flag(name)
    out: list[tuple[str, FlagValue | None]] = [("configured", configured)]
    if state.running is not None:
        out.append(("running", running))
    return out


def evaluate_flag(check: FlagCheck, state: NodeState) -> Result:
    """One 1.2.x check over every known view of its flag."""
    details: list[str] = []
    failed: list[str] = []
    for view, flag in views(state, check.flag):
        line = describe(view, flag)
        problem = _flag_problem(check, flag)
        if problem:
            failed.append(view)
            if flag is not None:  # "not set" is already what describe() says
                line += f" — {problem}"
        elif check.flag == "audit-log-path" and flag is not None and flag.value == "-":
            line += " — events go to the K3s process's standard output (its journal)"
        details.append(line)
    if state.running is None:
        details.append("running: not known (see 'Flags of the running API server are known')")
    return Result(
        check.id,
        "cis",
        check.title,
        Status.FAIL if failed else Status.PASS,
        tuple(details),
        _fix(check.fix, failed, state),
    )


def _fix(fix: str, failed: list[str], state: NodeState) -> str:
    """The configuration's fix, or only a restart when just the running view fails."""
    if failed == ["running"]:
        return (
            "the configuration is already right; restart K3s to apply it: "
            f"sudo {state.layout.restart_command()}"
        )
    return fix if failed else ""


def _flag_problem(check: FlagCheck, flag: FlagValue | None) -> str:
    if flag is None or flag.value == "":
        return "not set"
    if check.minimum is None:
        return ""
    try:
        number = int(flag.value)
    except ValueError:
        return "not a whole number: the API server will not start"
    if number < check.minimum:
        return f"below {check.minimum}"
    return ""


def evaluate_policy_file(state: NodeState, readable: dict[str, str]) -> Result:
    """3.2.1: the policy flag is set in every known view and names a file that exists.

    ``readable`` maps policy node paths to the problem reading them ("" when fine).
    """
    details: list[str] = []
    failed: list[str] = []
    for view, flag in views(state, "audit-policy-file"):
        line = describe(view, flag)
        if flag is None or not flag.value:
            failed.append(view)
        elif readable.get(flag.value):
            failed.append(view)
            line += f" — {readable[flag.value]}"
        else:
            line += " — the file is there"
        details.append(line)
    fix = (
        "write a policy (k3watch policy generate --profile recommended) and name it with "
        f"audit-policy-file in kube-apiserver-arg ({DROPIN_HINT}), then restart K3s"
    )
    return Result(
        POLICY_FILE_ID,
        "cis",
        POLICY_FILE_TITLE,
        Status.FAIL if failed else Status.PASS,
        tuple(details),
        _fix(fix, failed, state),
    )


def evaluate_policy_coverage(review: PolicyReview | None) -> Result:
    """3.2.2: the policy parses, lint finds no error, and the CIS areas are logged.

    Fails on a policy the API server rejects, a lint error (secret bodies logged, no
    catch-all…) or a CIS 3.2.2 area left unlogged. Lint warnings and built-in rules the policy
    blinds only warn: a policy may trade detection for volume on purpose (the minimal profile).
    """
    fix = (
        "run `k3watch policy lint` and `k3watch policy coverage` on the policy and fix what "
        "they report, or regenerate it with `k3watch k3s setup --profile recommended --apply`"
    )
    if review is None:
        return Result(
            POLICY_COVERAGE_ID,
            "cis",
            POLICY_COVERAGE_TITLE,
            Status.FAIL,
            ("no audit policy to review (see 3.2.1)",),
            fix,
        )
    details = [f"policy: {review.source}"]
    if review.parse_error:
        details.append(f"the API server would reject it: {review.parse_error}")
        return Result(
            POLICY_COVERAGE_ID, "cis", POLICY_COVERAGE_TITLE, Status.FAIL, tuple(details), fix
        )
    details.extend(f"lint {f.severity}: {f.text}" for f in review.errors + review.warnings)
    if review.concerns:
        details.extend(f"CIS area not covered: {c}" for c in review.concerns)
    else:
        details.append(
            "CIS areas covered: secrets, config maps and token reviews at Metadata; changes "
            "to pods and deployments; pods/exec, pods/portforward, pods/proxy, services/proxy"
        )
    if review.coverage_error:
        details.append(f"rule coverage not measured: {review.coverage_error}")
    elif review.blind:
        details.append(
            f"blinds {len(review.blind_rules)} built-in rule(s) "
            f"({len(review.blind)} blind spots; `k3watch policy coverage` lists them):"
        )
        details.extend(f"  {rule}" for rule in review.blind_rules)
    else:
        details.append("blinds no built-in rule")
    if review.errors or review.concerns:
        status = Status.FAIL
    elif review.warnings or review.blind or review.coverage_error:
        status = Status.WARN
    else:
        status = Status.PASS
    return Result(
        POLICY_COVERAGE_ID,
        "cis",
        POLICY_COVERAGE_TITLE,
        status,
        tuple(details),
        fix if status is not Status.PASS else "",
    )
