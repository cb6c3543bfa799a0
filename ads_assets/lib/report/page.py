"""The anomaly report as one self-contained HTML page: its charts, the top alerts, the leaderboard, the checks.

The page loads nothing: plotly.js is inlined once, each chart's figure is a JSON `<script>` beside its `<div>`,
and a Content-Security-Policy forbids every request. Every text from the data is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from ads_assets.lib.report.data import FLAGGED_POINTS, ReportData
from ads_assets.lib.report.figures import daily_figure, district_map, score_figure

CHARTS = ("daily", "scores", "districts")
"""The id of each chart's `<div>`; its figure is in the `<script id="figure-<id>">` beside it."""
CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
p.lead { color: #555; } .chart { min-height: 440px; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #eee; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td:not(:last-child) { white-space: nowrap; }
tr.failed td { background: #fdecea; }
"""
LOADER = """
document.querySelectorAll("script.figure").forEach(function (node) {
  var figure = JSON.parse(node.textContent);
  Plotly.newPlot(node.dataset.chart, figure.data, figure.layout, {displaylogo: false, responsive: true});
});
"""


def _escape(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return "–"
    return html.escape(str(value))


def _number(value: object, digits: int = 0) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value):,.{digits}f}"


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[str], failed: Sequence[bool] = ()
) -> str:
    """An HTML table of already-escaped cells; `failed` marks rows to highlight."""
    head = "".join(f"<th{' class=number' if name in numeric else ''}>{html.escape(name)}</th>" for name in headers)
    lines = []
    for index, row in enumerate(rows):
        marked = ' class="failed"' if index < len(failed) and failed[index] else ""
        cells = "".join(
            f"<td{' class=number' if name in numeric else ''}>{cell}</td>"
            for name, cell in zip(headers, row, strict=True)
        )
        lines.append(f"<tr{marked}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _chart(chart: str, figure_json: str) -> str:
    return (
        f'<div id="{chart}" class="chart"></div>\n'
        f'<script type="application/json" class="figure" id="figure-{chart}" data-chart="{chart}">{figure_json}</script>'
    )


def alerts_section(alerts: pd.DataFrame) -> str:
    if alerts.empty:
        return "<p>No transaction is flagged.</p>"
    headers = ("month", "transaction", "account", "date", "amount", "kind", "score", "detector", "status", "reason")
    rows = [
        (
            _escape(row.month),
            _escape(row.trans_id),
            _escape(row.account_id),
            _escape(pd.Timestamp(row.trans_date).date().isoformat()),
            _number(row.amount, 2),
            _escape(row.kind),
            _number(row.score, 3),
            _escape(row.detector),
            _escape(row.status),
            _escape(row.sentence),
        )
        for row in alerts.itertuples(index=False)
    ]
    return _table(headers, rows, {"transaction", "account", "amount", "score"})


def leaderboard_section(leaderboard: pd.DataFrame) -> str:
    if leaderboard.empty:
        return "<p>No retrain evaluated yet: cold-start models keep their configured weights.</p>"
    latest = leaderboard["month"].max()
    shown = leaderboard[leaderboard["month"] == latest]
    headers = ("candidate", "rank", "average precision", "recall at 1 %", "meets floor", "champion")
    rows = [
        (
            _escape(row.candidate),
            _escape(row.rank),
            _number(row.average_precision, 3),
            _number(row.recall_at_1pct, 3),
            "yes" if row.meets_floor else "no",
            "champion" if row.is_champion else "",
        )
        for row in shown.itertuples(index=False)
    ]
    champions = leaderboard[leaderboard["is_champion"].astype(bool)].sort_values("month")
    listed = ", ".join(f"{_escape(row.month)} {_escape(row.candidate)}" for row in champions.itertuples(index=False))
    return (
        f"<p>Latest retrain, {_escape(latest)}: candidates ranked on the canaries (rank 1 is the champion).</p>"
        + _table(headers, rows, {"rank", "average precision", "recall at 1 %"})
        + (f"<p>Champion of each retrain: {listed}.</p>" if listed else "")
    )


def quality_section(quality: pd.DataFrame) -> str:
    if quality.empty:
        return "<p>No data-quality check has run yet.</p>"
    headers = ("asset", "checks", "passed", "failed (blocking)", "failed (warning)", "failed checks")
    rows = [
        (
            _escape(row.asset),
            _number(row.checks),
            _number(row.passed),
            _number(row.failed_blocking),
            _number(row.failed_warning),
            _escape(row.failed_checks or ""),
        )
        for row in quality.itertuples(index=False)
    ]
    failed = [int(row.passed) < int(row.checks) for row in quality.itertuples(index=False)]
    passed, checks = int(quality["passed"].sum()), int(quality["checks"].sum())
    return (
        f"<p>The latest result of every check, per asset and month: {passed:,} of {checks:,} passed. "
        "The Data Docs (<code>quality/index.html</code> beside this report) hold each validation.</p>"
        + _table(headers, rows, {"checks", "passed", "failed (blocking)", "failed (warning)"}, failed)
    )


def build_page(data: ReportData, towns: pd.DataFrame | None = None) -> str:
    """The report page of `data`; `towns` (district_id, latitude, longitude) places the districts (default: shipped)."""
    figures = {
        "daily": daily_figure(data.daily),
        "scores": score_figure(data.points),
        "districts": district_map(data.districts, towns),
    }
    charts = {name: _chart(name, pio.to_json(figure, validate=False)) for name, figure in figures.items()}
    dates = pd.to_datetime(data.daily["trans_date"]) if len(data.daily) else pd.Series(dtype="datetime64[ns]")
    span = f" from {dates.min().date()} to {dates.max().date()}" if len(dates) else ""
    rate = 100.0 * data.flagged / data.transactions if data.transactions else 0.0
    run = _escape(data.run_id)
    flagged = int(data.points["flagged"].astype(bool).sum())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ADS anomaly report, run {run}</title>
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
</head>
<body>
<h1>ADS anomaly report</h1>
<p class="lead">Run <code id="run-id">{run}</code>, generated {data.generated_at:%Y-%m-%d %H:%M} UTC:
{data.transactions:,} transactions scored{span}, {data.flagged:,} flagged ({rate:.2f} %).</p>
<h2>Daily volume</h2>
{charts["daily"]}
<h2>Amount against score</h2>
<p>The {flagged:,} highest-scoring flagged transactions (at most {FLAGGED_POINTS:,}), coloured by the part of the
ensemble that contributed most to each score, over a sample of {len(data.points) - flagged:,} unflagged ones in grey.</p>
{charts["scores"]}
<h2>Flagged rate by district</h2>
{charts["districts"]}
<h2>Top alerts</h2>
{alerts_section(data.alerts)}
<h2>Detectors' leaderboard</h2>
{leaderboard_section(data.leaderboard)}
<h2>Data quality</h2>
{quality_section(data.quality)}
<script>{LOADER}</script>
</body>
</html>
"""
