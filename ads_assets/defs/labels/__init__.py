"""Analyst labels: the label files of the labels inbox, applied to `anomaly.labels` before training."""
