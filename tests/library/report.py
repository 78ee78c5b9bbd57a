"""Print the library's evaluation as markdown for docs/rules.md.

Run: ``.venv/bin/python -m tests.library.report`` (from the project root). Sections: the noise
on simulated normal K3s days, every medium+ alert on hkerma's real Helm churn with the reason it
exists, and the agreement with Falco's and Panther's labelled test cases.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from tests.library.agreement import agreement_markdown
from tests.library.churn import attribute, helm_releases, hkerma_run, the_admin
from tests.library.datasets import load_hkerma
from tests.library.evaluate import NOISE_SEVERITY, library
from tests.library.noise import (
    NOISE_BUDGET_PER_10K,
    NOISE_STREAMS,
    SETUP_IDENTITY,
    after_creation,
    creation_day,
    noise_result,
    noise_run,
)

from k3watch.alert import Alert


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _group(alert: Alert) -> str:
    return ", ".join(
        f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in alert.group.items()
    )


def noise_section() -> list[str]:
    label = NOISE_SEVERITY.label
    lines = [
        "### Noise on normal K3s days",
        "",
        "The K3s simulator (`k3watch sample`, seed 7, no attack scenarios) scanned with the "
        f"built-in library. Budget: at most {NOISE_BUDGET_PER_10K:g} alert at {label} or above "
        "per 10,000 events of normal operation, counted on the days after the cluster's creation "
        "day (the whole stream is scanned, so baselines and windows see that day too).",
        "",
        f"| Days after creation | Events | Alerts (all) | {label.capitalize()}+ | "
        f"{label.capitalize()}+ per 10,000 events | Allowed | Within budget |",
        "|---|---|---|---|---|---|---|",
    ]
    for days in NOISE_STREAMS:
        r = noise_result(days)
        lines.append(
            f"| {days} | {r.events:,} | {r.alerts} | {r.noisy} | "
            f"{r.per_10k:.1f} | {r.allowed} | {'yes' if r.within_budget else 'no'} |"
        )
    run = noise_run(NOISE_STREAMS[0])
    later = [a for a in after_creation(run.alerts) if a.severity >= NOISE_SEVERITY]
    if later:
        lines += ["", f"{label.capitalize()}+ alerts after the creation day:", ""]
        lines += _alert_table(later, reasons=None)
    first = [a for a in creation_day(run.alerts) if a.severity >= NOISE_SEVERITY]
    if first:
        lines += [
            "",
            f"On the creation day, K3s's own start-up raises nothing at {label} or above; the "
            f"administrator's set-up ({SETUP_IDENTITY}) raises these, as it should:",
            "",
        ]
        lines += _alert_table(first, reasons=None)
    return lines


def _alert_table(alerts: Sequence[Alert], reasons: Iterable[str] | None) -> list[str]:
    reasons = list(reasons) if reasons is not None else [a.summary for a in alerts]
    lines = ["| Severity | Rule | Group | Events | Reason |", "|---|---|---|---|---|"]
    for alert, reason in zip(alerts, reasons, strict=True):
        lines.append(
            f"| {alert.severity.label} | {_cell(alert.title)} | {_cell(_group(alert))} | "
            f"{alert.count} | {_cell(reason)} |"
        )
    return lines


def hkerma_section() -> list[str]:
    data = load_hkerma()
    run = hkerma_run()
    noisy = run.at_least(NOISE_SEVERITY)
    attributions = [attribute(a) for a in noisy]
    charts = sorted(helm_releases().namespaces.values())
    by_admin = sum(a.by_admin for a in attributions)
    lines = [
        "### Real Helm churn (hkerma's kubernetes-event-dataset)",
        "",
        f"{run.events:,} real audit events ({len(data.skipped)} truncated CSV row skipped) of four "
        f"minutes on a kubeadm cluster: the admin (`{the_admin()}`, the only identity writing "
        f"Helm release secrets) installs {len(charts)} charts ({', '.join(charts)}) while "
        "kube-prometheus-stack, cert-manager and gatekeeper operators, controllers and nodes run. "
        "The policy logs at Metadata level (no request bodies) and the CSV keeps no user groups, "
        "source addresses or user agents, so rules needing those cannot fire here.",
        "",
        f"{len(run.alerts)} alerts in all; {len(noisy)} at {NOISE_SEVERITY.label} or above "
        f"({run.per_10k():.1f} per 10,000 events), {by_admin} of them from the admin's chart "
        f"installs and {len(noisy) - by_admin} from routine churn:",
        "",
    ]
    reasons = [f"{a.reason()}. {a.alert.summary}" for a in attributions]
    return lines + _alert_table(noisy, reasons)


def agreement_section() -> list[str]:
    return [
        "### Agreement with Falco's and Panther's labelled test cases",
        "",
        "Each case scanned on its own; a case of a covered rule idea agrees when a covering "
        "k3watch rule matches a case that must fire, or none matches a case that must stay "
        "quiet (correlation inputs count as matching). Falco's trusted-image override is "
        "replaced by the equivalent Sigma filter (tests/library/falco_overrides/).",
        "",
        agreement_markdown(),
    ]


def report() -> str:
    ruleset = library()
    head = [
        "## Evaluation of the built-in library",
        "",
        f"Generated by `python -m tests.library.report` with {len(ruleset)} rules and "
        f"{ruleset.filters} filters loaded"
        + (f" ({len(ruleset.errors)} rule files failed to load)" if ruleset.errors else "")
        + ".",
        "",
    ]
    sections = [noise_section(), hkerma_section(), agreement_section()]
    return "\n".join(head + [line for s in sections for line in [*s, ""]])


def main() -> None:
    sys.stdout.write(report())


if __name__ == "__main__":
    main()
