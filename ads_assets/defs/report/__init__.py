"""The anomaly report asset: one self-contained HTML page per run at `{output}/report/index.html`."""
