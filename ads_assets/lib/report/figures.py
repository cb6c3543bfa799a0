"""The anomaly report's charts as plotly figures: daily volume, amount against score, and the district map.

The map is a plain scatter of the district towns on longitude and latitude axes (never plotly's geo traces,
which fetch their base map from a CDN). Text from the data reaches plotly HTML-escaped: plotly reads markup
in hover labels and draws the escaped text as written.
"""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ads_assets.lib.report.districts import MEAN_LATITUDE, district_towns

TEMPLATE = "plotly_white"
UNFLAGGED_COLOUR = "#b0b0b0"
NO_DATA_COLOUR = "#d9d9d9"
UNATTRIBUTED = "unattributed"
"""The colour group of a flagged transaction whose reasons give no detector's contribution."""
DETECTOR_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
LARGEST_BUBBLE = 40
"""The diameter, in pixels, of the district with the most transactions."""


def _layout(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(template=TEMPLATE, title=title, height=440, margin={"l": 60, "r": 30, "t": 60, "b": 50})
    return figure


def daily_figure(daily: pd.DataFrame) -> go.Figure:
    """Transactions scored per day (bars) and flagged per day (a line on its own axis)."""
    dates = [value.isoformat() for value in pd.to_datetime(daily["trans_date"]).dt.date]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Bar(name="transactions", x=dates, y=daily["transactions"].astype(int).tolist(), marker_color="#9ecae1"),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            name="flagged",
            x=dates,
            y=daily["flagged"].astype(int).tolist(),
            mode="lines+markers",
            marker={"size": 4},
            line={"color": "#d62728", "width": 1.5},
        ),
        secondary_y=True,
    )
    figure.update_yaxes(title_text="transactions", secondary_y=False, rangemode="tozero")
    figure.update_yaxes(
        title_text="flagged", secondary_y=True, rangemode="tozero", showgrid=False, tickmode="auto", tickformat=",d"
    )
    figure.update_layout(bargap=0, legend={"orientation": "h", "y": -0.15})
    return _layout(figure, "Transactions scored and flagged per day")


def score_figure(points: pd.DataFrame) -> go.Figure:
    """Each transaction's score against its amount: unflagged ones in grey, flagged ones coloured by detector."""
    figure = go.Figure()
    unflagged = points[~points["flagged"].astype(bool)]
    if len(unflagged):
        figure.add_trace(_points(unflagged, "not flagged (sample)", UNFLAGGED_COLOUR, size=4, opacity=0.5))
    flagged = points[points["flagged"].astype(bool)]
    groups = flagged["detector"].astype(object).where(flagged["detector"].notna(), UNATTRIBUTED)
    for index, name in enumerate(sorted(set(groups))):
        colour = DETECTOR_COLOURS[index % len(DETECTOR_COLOURS)]
        figure.add_trace(_points(flagged[groups == name], f"flagged: {name}", colour, size=7, opacity=0.85))
    figure.update_xaxes(title_text="amount (CZK, log scale)", type="log")
    figure.update_yaxes(title_text="score", range=[0, 1.02])
    figure.update_layout(legend={"title": {"text": "part that contributed most"}})
    return _layout(figure, "Amount against score")


def _points(rows: pd.DataFrame, name: str, colour: str, size: int, opacity: float) -> go.Scatter:
    labels = [f"transaction {trans_id}" for trans_id in rows["trans_id"].astype(int)]
    return go.Scatter(
        name=html.escape(name),
        x=rows["amount"].astype(float).tolist(),
        y=rows["score"].astype(float).round(4).tolist(),
        mode="markers",
        marker={"color": colour, "size": size, "opacity": opacity},
        text=labels,
        hovertemplate="%{text}<br>amount %{x:,.2f}<br>score %{y:.3f}<extra></extra>",
    )


def district_map(districts: pd.DataFrame, towns: pd.DataFrame | None = None) -> go.Figure:
    """Each district's town at its longitude and latitude: bubble area by transactions, colour by flagged rate.

    Districts without a known town are left off; those without transactions are small grey points.
    """
    towns = district_towns() if towns is None else towns
    placed = districts.merge(towns[["district_id", "latitude", "longitude"]], on="district_id", how="inner")
    placed = placed.assign(transactions=placed["transactions"].astype(int), flagged=placed["flagged"].astype(int))
    active = placed[placed["transactions"] > 0]
    idle = placed[placed["transactions"] == 0]
    figure = go.Figure()
    if len(active):
        rate = (100.0 * active["flagged"] / active["transactions"]).round(3)
        largest = int(active["transactions"].max())
        figure.add_trace(
            go.Scatter(
                name="districts",
                x=active["longitude"].astype(float).tolist(),
                y=active["latitude"].astype(float).tolist(),
                mode="markers",
                marker={
                    "size": active["transactions"].tolist(),
                    "sizemode": "area",
                    "sizeref": 2.0 * largest / LARGEST_BUBBLE**2,
                    "sizemin": 4,
                    "color": rate.tolist(),
                    "colorscale": "Reds",
                    "cmin": 0,
                    "showscale": True,
                    "colorbar": {"title": {"text": "flagged %"}},
                    "line": {"color": "#555555", "width": 0.5},
                },
                text=[
                    f"{html.escape(str(name))}<br>{count:,} transactions, {flags:,} flagged ({share:.2f} %)"
                    for name, count, flags, share in zip(
                        active["name"], active["transactions"], active["flagged"], rate, strict=True
                    )
                ],
                hoverinfo="text",
            )
        )
    if len(idle):
        figure.add_trace(
            go.Scatter(
                name="no transactions",
                x=idle["longitude"].astype(float).tolist(),
                y=idle["latitude"].astype(float).tolist(),
                mode="markers",
                marker={"size": 5, "color": NO_DATA_COLOUR},
                text=[f"{html.escape(str(name))}<br>no transactions" for name in idle["name"]],
                hoverinfo="text",
            )
        )
    figure.update_xaxes(title_text="longitude (°E)", constrain="domain")
    figure.update_yaxes(
        title_text="latitude (°N)", scaleanchor="x", scaleratio=1 / math.cos(math.radians(MEAN_LATITUDE))
    )
    figure.update_layout(showlegend=False)
    return _layout(figure, "Flagged rate by district (the district's town; area: transactions)")
