"""The anomaly report: one self-contained HTML page per run, with charts, the top alerts, the leaderboard and checks.

`data` reads what the page shows from Postgres, `figures` draws the charts with plotly, `districts` places the
Berka districts on the map, `page` assembles the HTML and `publish` writes it to `{output}/report/index.html`.
"""
