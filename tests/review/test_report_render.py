"""The review report in every format: JSON, Markdown, HTML (a page and a fragment), PDF."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from tests.conftest import builtin_rules
from tests.review.report_data import END, START, build

from k3watch.review.config import REPORT_SECTIONS
from k3watch.review.model import Report, from_json
from k3watch.review.pdf import latin1, pdf
from k3watch.review.render import FORMATS, render, render_body, render_page
from k3watch.review.report import ReviewOptions, build_report
from k3watch.store.sqlite import SqliteStore


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    store: SqliteStore = build(tmp_path_factory.mktemp("render"), builtin_rules())
    try:
        yield build_report(
            store,
            ReviewOptions(start=START, end=END, title="Weekly review <prod>"),
            ruleset=builtin_rules(),
        )
    finally:
        store.close()


def test_json_holds_the_whole_report_and_reads_back(report: Report) -> None:
    data = render(report, "json")
    assert from_json(data) == report
    assert data.lstrip().startswith(b'{\n  "version": 1,')
    assert b'"affected_events": 803' in data


def test_markdown_has_a_table_per_section(report: Report) -> None:
    text = render(report, "md").decode()
    assert text.startswith("# Weekly review <prod>\n")
    for heading in ("## 1. Alerts", "## 2. New", "## 3. RBAC changes: 3", "## 4. exec",
                    "## 5. Secrets accessed by people: 7", "## 6. Denied requests: 7",
                    "## 7. Audit pipeline", "## 8. Rule health"):  # fmt: skip
        assert heading in text
    assert "| carol | 2 |" in text
    assert "| server-1 | audit | json | 3 |" in text
    assert "803 audit events lost (800 by webhook, 3 by log)" in text


def test_markdown_cells_escape_pipes_and_line_breaks(report: Report) -> None:
    """The webhook message holds line breaks; no table row may be broken by them."""
    text = render(report, "md").decode()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
    assert rows and all(w >= 3 for w in widths)


def test_html_is_one_self_contained_page(report: Report) -> None:
    page = render_page(report)
    assert page.startswith("<!doctype html>")
    assert "<style>" in page and ".review-report" in page
    assert page.count("<svg") >= 8
    # nothing loaded from elsewhere: no src, no link, no url() in the CSS
    assert not re.search(r"""\s(src|href)\s*=""", page)
    assert "url(" not in page
    assert "<script" not in page
    assert "Weekly review &lt;prod&gt;" in page  # escaped
    assert "carol-admin" in page


def test_html_body_is_a_fragment_to_include(report: Report) -> None:
    body = render_body(report)
    assert "<html" not in body and "<style" not in body
    assert '<h2 id="rbac_changes">3. RBAC changes: 3</h2>' in body
    assert body.strip() in render_page(report)


def test_pdf_embeds_text_and_charts(report: Report) -> None:
    """With the core fonts and no compression the text is in the page streams as written."""
    data = pdf(report, compress=False, core_fonts=True)
    assert data.startswith(b"%PDF-")
    assert b"(Weekly review <prod>)" in data
    assert b"(RBAC changes by user)" in data  # an SVG chart's title, drawn as text
    assert b"(carol-admin)" in data or b"carol-admin" in data
    assert data.rstrip().endswith(b"%%EOF")


def test_pdf_uses_dejavu_when_installed(report: Report) -> None:
    data = render(report, "pdf")
    assert data.startswith(b"%PDF-")
    from k3watch.review.pdf import dejavu

    if dejavu() is not None:
        assert b"DejaVu" in data


def test_pdf_warns_of_nothing(report: Report, caplog: pytest.LogCaptureFixture) -> None:
    """fpdf2's warning about the charts' <title> elements is filtered; nothing else warns."""
    with caplog.at_level(logging.WARNING, logger="fpdf"):
        pdf(report)
    assert not [r for r in caplog.records if r.name.startswith("fpdf")]


def test_latin1_replaces_what_the_core_fonts_lack() -> None:
    assert latin1("café – “ok” … 漢") == 'café - "ok" ... ?'


def test_every_format_renders(report: Report) -> None:
    for fmt in FORMATS:
        assert render(report, fmt)
    with pytest.raises(ValueError, match="unknown report format"):
        render(report, "docx")


def test_every_checklist_section_is_an_anchor_of_the_report(report: Report) -> None:
    """A review's checklist items link to the report's sections by name."""
    body = render_body(report)
    for section in REPORT_SECTIONS:
        assert f'id="{section}"' in body, section
