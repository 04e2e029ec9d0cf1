"""Expert reports: pure rules and rendering (HTML, PDF, FHIR) and the job runner the worker calls."""

from cloud_expert.reports.ecg_svg import strip_svg
from cloud_expert.reports.render import ReportInput, render_report, render_report_html

__all__ = ["ReportInput", "render_report", "render_report_html", "strip_svg"]
