"""The report as a PDF (reportlab; A4 landscape so one 10 s row of 25 mm/s paper fits the page width).

The ECG is drawn by `EcgPaper`, a flowable that draws exactly the geometry of `ecg_paper` (1 mm = 72/25.4
pt): light 1 mm lines, dark 5 mm lines, a 1 mV calibration pulse per row, the trace, a blue tick per R peak
and a red dashed line at the event. Every page's footer repeats "preliminary" (until signed) and DRILL.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from cloud_expert.reports import ecg_paper
from cloud_expert.reports.ecg_svg import MM_PER_MV
from cloud_expert.reports.render import ReportView, hop_rows, measurement_rows

MINOR_COLOR = colors.Color(0.96, 0.72, 0.72)
MAJOR_COLOR = colors.Color(0.88, 0.44, 0.44)
PAPER_COLOR = colors.Color(1.0, 0.973, 0.965)
BEAT_COLOR = colors.Color(0.12, 0.37, 0.75)
SEVERITY_COLORS = {"critical": colors.Color(0.48, 0, 0), "high": colors.Color(0.7, 0, 0),
                   "moderate": colors.Color(1, 0.6, 0), "info": colors.Color(0.8, 0.87, 0.93),
                   "normal": colors.Color(0.87, 1, 0.87)}
MARGIN = 12 * mm


class EcgPaper(Flowable):
    """One strip on standard ECG paper; its size is the paper's, in millimetres converted to points."""

    def __init__(self, signal_mv: Any, *, fs: float, event_s: float | None, beats_s: tuple[float, ...]) -> None:
        super().__init__()
        self.layout = ecg_paper.layout_strip(len(signal_mv), fs=fs, event_s=event_s)
        self.traces = ecg_paper.row_traces(signal_mv, self.layout)
        self.event_s = event_s
        self.beats_s = beats_s
        self.width = ecg_paper.mm_to_pt(self.layout.width_mm)
        self.height = ecg_paper.mm_to_pt(self.layout.height_mm)

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        c: Canvas = self.canv
        lay = self.layout
        c.saveState()
        c.scale(ecg_paper.PT_PER_MM, ecg_paper.PT_PER_MM)  # from here on, user units are millimetres
        c.setFillColor(PAPER_COLOR)
        c.rect(0, 0, lay.width_mm, lay.height_mm, stroke=0, fill=1)
        lines = ecg_paper.grid_lines(lay.width_mm, lay.height_mm)
        for major, color, width in ((False, MINOR_COLOR, 0.05), (True, MAJOR_COLOR, 0.15)):
            path = c.beginPath()
            for ln in lines:
                if ln.major == major:
                    path.moveTo(ln.x0, ln.y0)
                    path.lineTo(ln.x1, ln.y1)
            c.setStrokeColor(color)
            c.setLineWidth(width)
            c.drawPath(path, stroke=1, fill=0)
        c.setStrokeColor(colors.black)
        c.setLineWidth(0.25)
        for row, (xs, ys) in enumerate(self.traces):
            base = ecg_paper.row_baseline_mm(lay, row)
            cal = c.beginPath()
            cal.moveTo(0.5, base)
            for x, y in ((1.5, base), (1.5, base + MM_PER_MV), (3.5, base + MM_PER_MV), (3.5, base), (4.5, base)):
                cal.lineTo(x, y)
            c.drawPath(cal, stroke=1, fill=0)
            if len(xs) > 1:
                trace = c.beginPath()
                trace.moveTo(float(xs[0]), float(ys[0]))
                for x, y in zip(xs[1:], ys[1:], strict=True):
                    trace.lineTo(float(x), float(y))
                c.drawPath(trace, stroke=1, fill=0)
        c.setStrokeColor(BEAT_COLOR)
        c.setLineWidth(0.4)
        for beat in self.beats_s:
            placed = ecg_paper.place_time(beat, lay)
            if placed is not None:
                row, x = placed
                top = lay.height_mm - row * ecg_paper.ROW_HEIGHT_MM
                c.line(x, top - 1, x, top - 3)
        if self.event_s is not None and (placed := ecg_paper.place_time(self.event_s, lay)) is not None:
            row, x = placed
            top = lay.height_mm - row * ecg_paper.ROW_HEIGHT_MM
            c.setStrokeColor(colors.red)
            c.setDash(1.5, 1)
            c.line(x, top, x, top - ecg_paper.ROW_HEIGHT_MM)
        c.restoreState()


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": base["Title"], "h2": base["Heading2"], "body": base["BodyText"],
        "small": ParagraphStyle("small", parent=base["BodyText"], fontSize=7, leading=8.5, textColor=colors.grey),
        "cell": ParagraphStyle("cell", parent=base["BodyText"], fontSize=8, leading=10),
        "drill": ParagraphStyle("drill", parent=base["Title"], textColor=colors.black, backColor=colors.yellow,
                                alignment=TA_CENTER, borderPadding=6, fontSize=18),
        "prelim": ParagraphStyle("prelim", parent=base["BodyText"], textColor=colors.Color(0.7, 0, 0),
                                 borderColor=colors.Color(0.7, 0, 0), borderWidth=1.5, borderPadding=4,
                                 fontName="Helvetica-Bold"),
    }


def _table(rows: list[list[Any]], widths: list[float] | None = None, header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT", repeatRows=1 if header else 0)
    style = [("GRID", (0, 0), (-1, -1), 0.4, colors.lightgrey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("FONTSIZE", (0, 0), (-1, -1), 8)]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.93, 0.93, 0.93)),
                  ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold")]
    table.setStyle(TableStyle(style))
    return table


def _story(view: ReportView) -> list[Flowable]:
    s = _styles()
    d, a = view.data, view.assessment
    alert, strip = d.alert.payload, d.alert.payload.strip

    def p(text: str, style: str = "cell") -> Paragraph:
        return Paragraph(escape(text), s[style])

    story: list[Flowable] = []
    if d.drill:
        story += [Paragraph("DRILL — NOT A REAL PATIENT EVENT — DO NOT ACT CLINICALLY", s["drill"]), Spacer(1, 8)]
    story.append(p(f"{'[DRILL] ' if d.drill else ''}Cardiac episode report: {alert.kind.replace('_', ' ')}", "title"))
    if d.review_line is None:
        story.append(p("Preliminary — requires clinician review. Generated automatically; not a diagnosis.",
                       "prelim"))
    else:
        story.append(p(d.review_line, "body"))
    story.append(Spacer(1, 6))
    ident = [["Report", d.report_id, "Patient (pseudonym)", d.patient_id, "Site", d.site],
             ["Device", d.alert.source, "Alert time (UTC)", d.alert.created_at.isoformat(timespec="seconds"),
              "Trace", d.trace_id]]
    story.append(_table([[p(str(c)) for c in row] for row in ident], header=False))
    sev_style = TableStyle([("BACKGROUND", (1, 0), (1, 0), SEVERITY_COLORS[a.severity]),
                            ("TEXTCOLOR", (1, 0), (1, 0),
                             colors.white if a.severity in ("high", "critical") else colors.black),
                            ("FONTNAME", (0, 0), (-1, -1), "Helvetica-Bold")])
    sev = Table([["Assessment", a.severity.upper(), "Triage", f"{d.level.upper()} ({d.triage.stage})"]],
                hAlign="LEFT")
    sev.setStyle(sev_style)
    story += [Spacer(1, 6), sev, Spacer(1, 6)]
    story.append(KeepTogether([
        p(f"ECG strip ({strip.lead}, {strip.fs:.0f} Hz, {strip.duration_s:.1f} s): 25 mm/s, 10 mm/mV, 1 mm / 5 mm "
          "grid; 1 mV calibration pulse at the left of each row; blue ticks: R peaks; red dashed line: event.",
          "small"),
        EcgPaper(strip.to_mv(), fs=strip.fs, event_s=strip.event_s, beats_s=view.beats.r_peaks_s)]))
    finding_rows: list[list[Any]] = [["Severity", "Finding", "Detail", "Guideline"]]
    finding_rows += [[f.severity, p(f.title), p(f.detail), Paragraph(escape(f.citation), s["small"])]
                     for f in a.findings]
    findings: list[Flowable] = [p("Findings", "h2")]
    if a.findings:
        findings.append(_table(finding_rows, widths=[20 * mm, 55 * mm, 70 * mm, 125 * mm]))
    else:
        findings.append(p("No guideline threshold was crossed by the measured values.", "body"))
    findings += [p(n, "small") for n in a.notes]
    story += findings
    story.append(p("Recommendations", "h2"))
    story += [p(f"• {r}", "body") for r in a.recommendations]
    story.append(p("Personal care plan", "h2"))
    story += [p(f"• {c}", "body") for c in a.care_plan]
    h = a.history
    counts = ", ".join(f"{v} × {k}" for k, v in sorted(h.by_label.items())) or "none"
    story.append(p(f"History (non-drill, last {h.window_days} days): {h.n_episodes} episode(s): {counts}. "
                   f"HR trend: {' → '.join(f'{v:.0f}' for _, v in h.hr_trend[-8:]) or '—'} bpm. "
                   f"QTc trend: {' → '.join(f'{v:.0f}' for _, v in h.qtc_trend[-8:]) or '—'} ms.", "cell"))
    story.append(KeepTogether([p("Measurements", "h2"), _table(
        [["Measurement", "Value", "Source"], *[[p(x) for x in row] for row in measurement_rows(view.measurements)]],
        widths=[60 * mm, 70 * mm, 40 * mm])]))
    story.append(KeepTogether([p("Triage and path", "h2"), p("; ".join(d.triage.reasons) or "No reasons given."),
                               _table([["Hop", "Source", "At (UTC)", "ms after alert"],
                                       *[[r["name"], r["source"], r["at"], f"{r['ms']:.1f}"]
                                         for r in hop_rows(d.alert.created_at, d.hops)]])]))
    return story


def render_report_pdf(view: ReportView) -> bytes:
    """The PDF bytes of one report (deterministic for the same input: reportlab's invariant mode)."""
    buffer = io.BytesIO()
    d = view.data
    title = f"{'[DRILL] ' if d.drill else ''}CardioMesh report {d.report_id}"
    footer = ("DRILL — not a real patient event. " if d.drill else "") + (
        "Preliminary — requires clinician review." if d.review_line is None
        else f"{ {'amended': 'Amended', 'rejected': 'Rejected'}.get(d.review_status, 'Signed')} by {d.signed_by}.")

    def on_page(canvas: Canvas, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica-Bold" if d.drill else "Helvetica", 8)
        canvas.setFillColor(colors.Color(0.7, 0, 0))
        canvas.drawString(MARGIN, 6 * mm, f"{footer}  Report {d.report_id}, patient {d.patient_id}")
        canvas.drawRightString(landscape(A4)[0] - MARGIN, 6 * mm, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                            bottomMargin=MARGIN, title=title, author="CardioMesh cloud (automatic, preliminary)",
                            subject=f"trace {d.trace_id}", invariant=1)
    doc.build(_story(view), onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()
