"""The review report as PDF (fpdf2): the sections of the HTML page, tables and the same SVG
charts. Text is set in DejaVu Sans when the system has it (all of Unicode the font covers);
otherwise in the core Helvetica, which only has Latin-1: other characters are replaced."""

from __future__ import annotations

import io
import logging
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path

from fpdf import FPDF

from k3watch.review.charts import report_charts
from k3watch.review.markdown import STATUSES
from k3watch.review.model import EventList, Report, SeenItem
from k3watch.review.render import SUMMARY_HEADINGS, number, percent, summary_figures, when

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
HEADING = (22, 32, 42)
MAX_LINES = 3
MUTED = (95, 107, 118)


class _IgnoreSvgTitles(logging.Filter):
    """fpdf2 draws no ``<title>`` (the charts' tooltips) and warns about each: drop that one
    warning, keep the others."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.msg.startswith("Ignoring unsupported SVG tag")
            and isinstance(record.args, tuple)
            and record.args[:1] == ("title",)
        )


_svg_log = logging.getLogger("fpdf.svg")
if not any(isinstance(f, _IgnoreSvgTitles) for f in _svg_log.filters):
    _svg_log.addFilter(_IgnoreSvgTitles())


def dejavu(bold: bool = False) -> tuple[Path, Path] | None:
    """DejaVu Sans when installed: regular, and bold (regular again unless ``bold``: loading a
    TrueType font takes half a second)."""
    for directory in FONT_DIRS:
        regular = directory / "DejaVuSans.ttf"
        if regular.is_file():
            heavy = directory / "DejaVuSans-Bold.ttf"
            return regular, heavy if bold and heavy.is_file() else regular
    return None


def latin1(text: str) -> str:
    """``text`` with what Latin-1 lacks replaced: accents dropped, dashes and quotes made
    ASCII, anything else ``?``."""
    if text.isascii():
        return text
    text = text.translate(_ASCII)
    out = []
    for ch in text:
        if ord(ch) < 256:
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
        out.append(base or "?")
    return "".join(out)


_ASCII = str.maketrans({"…": "...", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"'})


class _Document(FPDF):
    def __init__(self, report: Report, fonts: tuple[Path, Path] | None) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report = report
        self.unicode = fonts is not None
        self._char_widths: dict[tuple[str, float], dict[str, float]] = {}
        if fonts is not None:
            self.add_font("DejaVu", "", str(fonts[0]))
            self.bold = ""
            if fonts[1] != fonts[0]:
                self.add_font("DejaVu", "B", str(fonts[1]))
                self.bold = "B"
            self.family = "DejaVu"
        else:
            self.family = "Helvetica"
            self.bold = "B"
        self.set_margins(14, 14, 14)
        self.set_auto_page_break(True, 14)
        self.set_title(self.clean(report.title))
        self.set_creator("k3watch")

    def clean(self, value: object) -> str:
        text = "" if value is None else str(value)
        return text if self.unicode else latin1(text)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(self.family, "", 7)
        self.set_text_color(*MUTED)
        period = self.report.period
        self.cell(
            0,
            5,
            self.clean(
                f"{self.report.title}, {when(period.start)} to {when(period.end)}"
                f" - page {self.page_no()}"
            ),
            align="C",
        )
        self.set_text_color(0, 0, 0)

    def heading(self, text: str, size: float = 13) -> None:
        if self.get_y() > self.h - 40:
            self.add_page()
        self.ln(3)
        self.set_font(self.family, self.bold, size)
        self.set_text_color(*HEADING)
        self.multi_cell(0, size * 0.5, self.clean(text), new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0, 0, 0)
        self.ln(1)

    def para(self, text: str, muted: bool = False) -> None:
        self.set_font(self.family, "", 9)
        if muted:
            self.set_text_color(*MUTED)
        self.multi_cell(0, 4.5, self.clean(text), new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0, 0, 0)
        self.ln(1)

    def grid(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[object]],
        widths: Sequence[float] | None = None,
        numeric: int = 0,
    ) -> None:
        """A table; a cell's text wraps to ``MAX_LINES`` lines, cut beyond. (Drawn cell by
        cell: fpdf2's own tables break lines character by character, 3 ms a cell.)"""
        if not rows:
            return
        size = 7.5
        line = 3.6
        total = sum(widths) if widths else float(len(header))
        scale = self.epw / total
        columns = [w * scale for w in widths] if widths else [self.epw / len(header)] * len(header)
        right = len(header) - numeric
        self.set_draw_color(217, 222, 227)

        def draw(cells: Sequence[object], bold: bool) -> None:
            self.set_font(self.family, self.bold if bold else "", size)
            wrapped = [
                self._wrap(self.clean(value), width - 1.6)
                for value, width in zip(cells, columns, strict=True)
            ]
            height = max(len(lines) for lines in wrapped) * line + 1.2
            if self.get_y() + height > self.page_break_trigger:
                self.add_page()
                if not bold:
                    draw(header, True)
                    self.set_font(self.family, "", size)
            x, y = self.l_margin, self.get_y()
            if bold:
                self.set_fill_color(241, 243, 245)
                self.rect(x, y, self.epw, height, style="F")
            for index, (lines, width) in enumerate(zip(wrapped, columns, strict=True)):
                for number_, text in enumerate(lines):
                    at = x + 0.8
                    if index >= right:
                        at = x + width - 0.8 - self._measure(text)
                    self.text(at, y + 0.6 + number_ * line + line * 0.75, text)
                x += width
            self.line(self.l_margin, y + height, self.l_margin + self.epw, y + height)
            self.set_xy(self.l_margin, y + height)

        draw(header, True)
        for values in rows:
            draw(values, False)
        self.ln(2)

    def _widths(self, text: str) -> list[float]:
        """The width of each character of ``text`` in the current font and size (cached per
        character: fpdf2's ``get_string_width`` shapes the text every time, ten times slower)."""
        font = self.current_font
        assert font is not None, "a font is set before text is measured"
        key = (font.fontkey, self.font_size_pt)
        cache = self._char_widths.setdefault(key, {})
        out = []
        for ch in text:
            width = cache.get(ch)
            if width is None:
                measured = font.get_text_width(ch, self.font_size_pt, None)[1]
                width = cache[ch] = float(measured) / self.k
            out.append(width)
        return out

    def _measure(self, text: str) -> float:
        return sum(self._widths(text))

    def _wrap(self, text: str, width: float) -> list[str]:
        """``text`` in lines of at most ``width`` (at most ``MAX_LINES``; the last one cut)."""
        if not text:
            return [text]
        ends = list(accumulate(self._widths(text)))
        if ends[-1] <= width:
            return [text]
        lines: list[str] = []
        start, offset = 0, 0.0
        while start < len(text) and len(lines) < MAX_LINES:
            fit = bisect_right(ends, offset + width, lo=start) - start  # characters that fit
            if start + fit >= len(text):
                lines.append(text[start:])
                start = len(text)
                break
            fit = max(1, fit)
            space = text.rfind(" ", start, start + fit + 1) - start
            cut = space if space > fit // 2 else fit
            lines.append(text[start : start + cut].rstrip())
            start += cut
            while start < len(text) and text[start] == " ":
                start += 1
            offset = ends[start - 1] if start else 0.0
        if start < len(text):
            last = lines[-1]
            room = width - self._measure("...")
            while last and self._measure(last) > room:
                last = last[:-1]
            lines[-1] = last + "..."
        return lines

    def chart(self, svg: str, width: float) -> None:
        # fpdf2 sets SVG text in the core fonts whatever the document's: Latin-1 only
        image = io.BytesIO(latin1(svg).encode("utf-8"))
        if self.get_y() > self.h - 14 - width * 0.45:
            self.add_page()
        self.image(image, w=width)
        self.ln(2)


def pdf(
    report: Report,
    *,
    compress: bool = True,
    fonts: tuple[Path, Path] | None = None,
    core_fonts: bool = False,
) -> bytes:
    """The report as a PDF file. ``fonts`` (regular and bold TrueType files, the same file
    twice for no bold) default to DejaVu Sans when installed (``dejavu``); without them, or
    with ``core_fonts``, the text is set in the core Helvetica (Latin-1 only)."""
    doc = _Document(report, None if core_fonts else fonts or dejavu())
    doc.set_compression(compress)
    charts = report_charts(report)
    wide, narrow = doc.epw, doc.epw * 0.75
    period = report.period
    doc.add_page()
    doc.heading(report.title, 17)
    doc.para(
        f"{when(period.start)} to {when(period.end)} ({number(period.days)} days);"
        f" generated {when(period.generated)}.",
        muted=True,
    )
    doc.grid(SUMMARY_HEADINGS, [summary_figures(report)], numeric=6)
    doc.chart(charts["events"], wide)
    _alerts(doc, report, charts, narrow)
    new = report.new_values
    doc.heading("2. New identities, service accounts and source IPs")
    doc.para("Seen for the first time ever during the period.", muted=True)
    _seen(doc, "Identities", new.identities, new.identities_total)
    _seen(doc, "Service accounts", new.service_accounts, new.service_accounts_total)
    _seen(doc, "Source IPs", new.source_ips, new.source_ips_total)
    doc.heading(f"3. RBAC changes: {number(report.rbac_changes.total)}")
    _events(doc, report.rbac_changes, charts["rbac_by_user"], narrow, "No RBAC changes.")
    doc.heading(f"4. exec, attach and port-forward sessions: {number(report.exec_sessions.total)}")
    _events(doc, report.exec_sessions, charts["exec_by_user"], narrow, "No sessions.")
    doc.heading(f"5. Secrets accessed by people: {number(report.secrets_access.total)}")
    _events(doc, report.secrets_access, charts["secrets_by_user"], narrow, "None.")
    denied = report.denied
    doc.heading(f"6. Denied requests: {number(denied.total)}")
    doc.chart(charts["denied"], wide)
    if denied.top_users:
        doc.chart(charts["denied_by_user"], narrow)
    _pipeline(doc, report, charts, wide)
    _rules(doc, report, charts, narrow)
    if report.notes:
        doc.heading("Notes")
        for note in report.notes:
            doc.para(f"- {note}")
    return bytes(doc.output())


def _alerts(doc: _Document, report: Report, charts: dict[str, str], width: float) -> None:
    alerts = report.alerts
    doc.heading("1. Alerts and triage")
    doc.para(f"{number(alerts.total)} alerts ({number(alerts.occurrences)} occurrences).")
    if alerts.by_severity_status:
        doc.chart(charts["alerts_by_severity"], width)
        rows = [
            [sev, *(number(row.get(s, 0)) for s in STATUSES), number(alerts.by_severity[sev])]
            for sev, row in alerts.by_severity_status.items()
        ]
        doc.grid(["Severity", *(s.replace("_", " ") for s in STATUSES), "total"], rows, numeric=5)
    if alerts.rules:
        doc.chart(charts["alerts_by_rule"], width)
        rows = [
            [r.title, r.severity, number(r.alerts), number(r.occurrences),
             *(number(r.by_status.get(s, 0)) for s in STATUSES)]
            for r in alerts.rules
        ]  # fmt: skip
        doc.grid(
            ["Rule", "Severity", "Alerts", "Occ.", "Open", "Ack.", "Resolved", "False pos."],
            rows,
            (60, 16, 14, 14, 14, 14, 14, 14),
            numeric=6,
        )
    doc.heading(f"Unresolved critical and high alerts: {number(alerts.unresolved_total)}", 11)
    if alerts.unresolved:
        rows = [
            [
                str(a.id),
                a.severity,
                a.status,
                a.title,
                a.summary,
                when(a.last_seen),
                a.assignee or "",
            ]
            for a in alerts.unresolved
        ]
        doc.grid(
            ["#", "Severity", "Status", "Rule", "Summary", "Last seen", "Assignee"],
            rows,
            (9, 14, 18, 40, 52, 27, 20),
        )
    else:
        doc.para("None.", muted=True)


def _seen(doc: _Document, what: str, items: Sequence[SeenItem], total: int) -> None:
    doc.heading(f"{what}: {number(total)}", 11)
    if not items:
        doc.para("None.", muted=True)
        return
    rows = [[v.value, when(v.first_seen), when(v.last_seen), number(v.events)] for v in items]
    doc.grid([what, "First seen", "Last seen", "Events"], rows, (90, 35, 35, 20), numeric=1)
    if total > len(items):
        doc.para(f"The first {number(len(items))} of {number(total)}.", muted=True)


def _events(doc: _Document, events: EventList, chart: str, width: float, empty: str) -> None:
    if events.by_user:
        doc.chart(chart, width)
    if not events.items:
        doc.para(empty, muted=True)
    else:
        rows = [
            [when(e.time, "second"), e.user, e.verb,
             e.resource + (f"/{e.subresource}" if e.subresource else "")
             + (f" {e.name}" if e.name else ""), e.namespace, e.source_ip,
             e.detail + (f" ({e.code})" if e.code else "")]
            for e in events.items
        ]  # fmt: skip
        doc.grid(
            ["Time (UTC)", "User", "Verb", "Object", "Namespace", "Source IP", "Detail"],
            rows,
            (27, 34, 12, 36, 20, 20, 33),
        )
        if events.total > len(events.items):
            doc.para(
                f"The newest {number(len(events.items))} of {number(events.total)}.", muted=True
            )
    if events.note:
        doc.para(events.note, muted=True)


def _pipeline(doc: _Document, report: Report, charts: dict[str, str], width: float) -> None:
    p = report.pipeline
    doc.heading("7. Audit pipeline health")
    doc.heading(f"Gaps of {number(p.min_gap / 60)} minutes or more: {number(p.gaps_total)}", 11)
    rows = [
        [g.cluster, g.node, g.source, number(g.gaps), number(g.minutes), number(g.longest)]
        for g in p.gaps_by_origin
    ]
    doc.grid(["Cluster", "Node", "Source", "Gaps", "Minutes", "Longest"], rows, numeric=3)
    if p.gaps_total > len(p.gaps):
        doc.para(f"The longest {number(len(p.gaps))} of {number(p.gaps_total)}:", muted=True)
    rows = [
        [g.cluster, g.node, g.source, when(g.start),
         ("no event since " if g.ongoing else "") + when(g.end), number(g.minutes)]
        for g in p.gaps
    ]  # fmt: skip
    doc.grid(["Cluster", "Node", "Source", "From", "To", "Minutes"], rows, numeric=1)
    if not p.gaps:
        doc.para("None.", muted=True)
    backend = p.backend
    doc.heading(f"Audit backend errors in the K3s logs: {number(backend.messages)}", 11)
    if backend.messages:
        lost = ", ".join(f"{number(n)} by {plugin}" for plugin, n in backend.by_plugin.items())
        doc.para(f"{number(backend.affected_events)} audit events lost ({lost}).")
        doc.chart(charts["backend_errors"], width)
        for sample in backend.samples:
            doc.para(sample, muted=True)
    else:
        doc.para("None.", muted=True)
    doc.heading(f"Rejected input: {number(p.ingest_errors_total)}", 11)
    rows = [[e.cluster, e.node, e.source, e.reason, number(e.count)] for e in p.ingest_errors]
    doc.grid(["Cluster", "Node", "Source", "Reason", "Count"], rows, numeric=1)
    if not rows:
        doc.para("None.", muted=True)


def _rules(doc: _Document, report: Report, charts: dict[str, str], width: float) -> None:
    rules = report.rules
    doc.heading("8. Rule health")
    doc.heading("Noisiest rules", 11)
    if rules.noisy:
        doc.chart(charts["noisy_rules"], width)
        rows = [
            [r.title, number(r.alerts), number(r.occurrences), number(r.false_positives),
             percent(r.false_positive_rate)]
            for r in rules.noisy
        ]  # fmt: skip
        doc.grid(
            ["Rule", "Alerts", "Occurrences", "False positives", "FP rate"],
            rows,
            (90, 20, 25, 25, 20),
            numeric=4,
        )
    else:
        doc.para("No rule fired in the period.", muted=True)
    if rules.never_fired is not None:
        doc.heading(
            f"Rules that never fired: {number(len(rules.never_fired))} of"
            f" {number(rules.rules_loaded)}",
            11,
        )
        rows = [[r.title, r.severity] for r in rules.never_fired]
        doc.grid(["Rule", "Severity"], rows, (150, 30))
    if rules.blinded is not None:
        doc.heading(
            f"Rules blinded by the audit policy {rules.policy}: {number(len(rules.blinded))}", 11
        )
        rows = [[r.title, r.severity, r.detail] for r in rules.blinded]
        doc.grid(["Rule", "Severity", "What it misses"], rows, (60, 18, 102))
