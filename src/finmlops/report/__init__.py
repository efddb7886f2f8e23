"""The HTML report: verdict, equity and drawdowns, stress windows, cost sweep, calibration, A/B."""

from finmlops.report.abtest import abtest_section, read_abtest
from finmlops.report.html import render_report
from finmlops.report.verdict import DSR_LEVEL, VariantVerdict, Verdict, variant_verdict, verdict

__all__ = [
    "DSR_LEVEL",
    "VariantVerdict",
    "Verdict",
    "abtest_section",
    "read_abtest",
    "render_report",
    "variant_verdict",
    "verdict",
]
