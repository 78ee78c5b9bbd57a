"""Real public audit data (tests/corpus, see its SOURCES.md) reads as expected.

The expected numbers were counted from the files themselves, not taken from their notes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from k3watch.errors import InputError
from k3watch.event import Event
from k3watch.parse.audit import AuditParser
from k3watch.sources.files import InputFile, open_input
from k3watch.telemetry import Counters

CORPUS = Path(__file__).parents[1] / "corpus"


def read(paths: list[Path]) -> tuple[dict[str, list[Event]], list[InputError], Counters]:
    """Parse each file through open_input and parse_stream, as `k3watch scan` does."""
    counters = Counters("corpus")
    errors: list[InputError] = []
    parser = AuditParser(counters, errors.append)
    events: dict[str, list[Event]] = {}
    for path in paths:
        inp = InputFile(path.name, path, path.stat().st_size)
        with open_input(inp) as stream:
            events[path.name] = list(parser.parse_stream(stream, inp.name))
    return events, errors, counters


def test_falco_traces_give_51_events_and_one_kind_error() -> None:
    """47 Falco trace files hold 51 events; fal_01_003.json's ``{"kind": 0}`` is one error."""
    files = sorted((CORPUS / "falco-k8s-audit-traces").glob("*.json"))
    assert len(files) == 47
    events, errors, counters = read(files)
    assert sum(len(found) for found in events.values()) == 51
    assert counters.get("events") == 51
    assert [str(e) for e in errors] == [
        "fal_01_003.json:1: kind must be 'Event' or 'EventList', got 0; skipped"
    ]
    assert events["create_configmap_sensitive_values.json"][5].line == 6
    versions = {e.raw.get("apiVersion") for found in events.values() for e in found}
    assert versions == {None, "audit.k8s.io/v1", "audit.k8s.io/v1beta1"}
    v1beta1 = [e for found in events.values() for e in found if "v1beta1" in str(e.raw)]
    assert all(e.time is not None for e in v1beta1)


def test_openshift_logs_and_pretty_printed_events_read_without_errors() -> None:
    """OpenShift's JSON-lines logs and its three pretty-printed single events all parse."""
    folder = CORPUS / "openshift-clo-audit"
    files = sorted(folder.glob("*.log")) + sorted(folder.glob("*.json"))
    files = [path for path in files if path.name != "raw_auditd.log"]
    events, errors, _ = read(files)
    assert {name: len(found) for name, found in events.items()} == {
        "audit-want.log": 4,
        "audit.log": 5,
        "audit_in.log": 100,
        "audit_out_exporter.log": 9,
        "raw_audit_kubernetes.json": 1,
        "raw_audit_oauth-apiserver.json": 1,
        "raw_audit_openshift.json": 1,
    }
    assert errors == []
    pretty = events["raw_audit_kubernetes.json"][0]
    assert pretty.location == "raw_audit_kubernetes.json:1"
    assert pretty.verb == "get"
    big = max(events["audit_in.log"], key=lambda e: len(str(e.raw)))
    assert "responseObject" in big.raw and not big.truncated


def test_auditd_log_is_not_audit_json_and_gives_a_located_error() -> None:
    """raw_auditd.log (a Linux auditd line) yields no events and one invalid_json at line 1."""
    events, errors, _ = read([CORPUS / "openshift-clo-audit" / "raw_auditd.log"])
    assert events == {"raw_auditd.log": []}
    assert [(str(e.location), e.reason) for e in errors] == [("raw_auditd.log:1", "invalid_json")]


def test_audit2rbac_demo_log_gives_37_events_with_second_precision_timestamps() -> None:
    """audit2rbac's demo.log: 37 events, all impersonated, each with a usable time."""
    events, errors, _ = read([CORPUS / "audit2rbac" / "demo.log"])
    found = events["demo.log"]
    assert len(found) == 37
    assert errors == []
    # Counted from the file: its notes say "bob" throughout, but alice and a service account
    # are impersonated too.
    assert Counter(e.impersonated_user for e in found) == {
        "bob": 29,
        "system:serviceaccount:ns1:sa1": 5,
        "alice": 3,
    }
    assert all(e.time is not None for e in found)
