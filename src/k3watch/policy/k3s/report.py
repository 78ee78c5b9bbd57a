"""``k3watch k3s check`` output: text for people, JSON for tools, JUnit XML for CI.

JUnit maps each check to a ``testcase`` (class name ``k3watch.k3s.<group>``): ``fail`` is a
``failure``, ``skip`` is ``skipped``, ``warn`` passes with its details in ``system-out``, so
a CI job goes red exactly when the command exits non-zero.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from k3watch.policy.k3s.apiserver import FlagValue
from k3watch.policy.k3s.check import CheckReport
from k3watch.policy.k3s.cis import Result, Status

_LABEL = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "SKIP"}
_GROUPS = (
    ("cis", "CIS audit checks"),
    ("config", "Configuration"),
    ("permissions", "Permissions"),
    ("webhook", "Audit webhook"),
)


def to_text(report: CheckReport) -> str:
    """A plain-text report: sources, flags with their origin, then each group of checks."""
    lines = [f"k3watch k3s check — {report.benchmark_text}", f"root: {report.root}", ""]
    lines.append("Sources")
    for source in report.sources:
        mark = "read" if source.found else "—"
        note = f"  ({source.note})" if source.note else ""
        lines.append(f"  {source.kind:<8} {mark:<5} {source.where}{note}")
    lines.append("")
    lines.append("Audit flags (configured = config files + command line; running = journal)")
    if not report.flags:
        lines.append("  none set anywhere: audit logging is off")
    for row in report.flags:
        lines.append(f"  {row.name}")
        lines.append(f"    configured: {_value(row.configured)}")
        if row.running_known:
            same = "" if row.agree else "   <-- differs: restart pending?"
            lines.append(f"    running:    {_value(row.running)}{same}")
    for group, heading in _GROUPS:
        results = [r for r in report.results if r.group == group]
        if not results:
            continue
        lines.append("")
        lines.append(heading)
        for result in results:
            lines.extend(_result_lines(result))
    if report.policy is not None and report.policy.findings:
        lines.append("")
        lines.append(f"Policy lint ({report.policy.source})")
        lines.extend(f"  {f.text}" for f in report.policy.findings)
    counts = report.counts()
    lines.append("")
    lines.append(
        f"checks: {counts['pass']} pass, {counts['fail']} fail, {counts['warn']} warn, "
        f"{counts['skip']} skip"
    )
    return "\n".join(lines) + "\n"


def _value(flag: FlagValue | None) -> str:
    if flag is None:
        return "not set"
    text = f"{flag.value}   ({flag.location})"
    for item in flag.shadowed:
        text += f"\n                overrides {item.value!r} from {item.location}"
    return text


def _result_lines(result: Result) -> list[str]:
    lines = [f"  [{_LABEL[result.status]}] {_number(result)}{result.title}"]
    lines.extend(f"         {d}" for d in result.details)
    if result.fix:
        lines.append(f"         fix: {result.fix}")
    return lines


def _number(result: Result) -> str:
    return f"{result.id} " if result.group == "cis" else ""


def to_json(report: CheckReport) -> dict[str, Any]:
    """The report as JSON-ready data (the shape is documented in docs/k3s.md)."""
    policy = report.policy
    return {
        "benchmark": report.benchmark,
        "root": report.root,
        "passed": not report.failed,
        "summary": report.counts(),
        "sources": [
            {"kind": s.kind, "where": s.where, "found": s.found, "note": s.note}
            for s in report.sources
        ],
        "flags": [
            {
                "flag": row.name,
                "configured": _flag_json(row.configured),
                "running": _flag_json(row.running) if row.running_known else None,
                "running_known": row.running_known,
                "agree": row.agree,
            }
            for row in report.flags
        ],
        "checks": [
            {
                "id": r.id,
                "group": r.group,
                "title": r.title,
                "status": r.status.value,
                "details": list(r.details),
                "fix": r.fix,
            }
            for r in report.results
        ],
        "policy": None
        if policy is None
        else {
            "path": policy.source,
            "parse_error": policy.parse_error,
            "lint": [f.to_json() for f in policy.findings],
            "uncovered": policy.concerns,
            "blind_spots": policy.blind,
            "accepted_gaps": policy.accepted,
        },
    }


def _flag_json(flag: FlagValue | None) -> dict[str, Any] | None:
    if flag is None:
        return None
    return {
        "value": flag.value,
        "from": str(flag.location),
        "overrides": [{"value": i.value, "from": str(i.location)} for i in flag.shadowed],
    }


def to_junit(report: CheckReport) -> str:
    """JUnit XML: one test suite, one test case per check."""
    counts = report.counts()
    suites = ET.Element("testsuites", name="k3watch k3s check")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"k3watch.k3s ({report.benchmark})",
        tests=str(len(report.results)),
        failures=str(counts["fail"]),
        errors="0",
        skipped=str(counts["skip"]),
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="benchmark", value=report.benchmark_text)
    ET.SubElement(properties, "property", name="root", value=report.root)
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"k3watch.k3s.{result.group}",
            name=f"{_number(result)}{result.title}".strip(),
        )
        text = "\n".join(result.details)
        if result.status is Status.FAIL:
            failure = ET.SubElement(case, "failure", message=result.fix or result.title)
            failure.text = text
        elif result.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=text)
        elif text:
            out = ET.SubElement(case, "system-out")
            out.text = (
                f"WARNING\n{text}\nfix: {result.fix}" if result.status is Status.WARN else text
            )
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
