"""canaryflow's own metrics: what a release pod reports about the release it is part of.

Release pods live for seconds, too short for Prometheus to scrape, so they push to a
Pushgateway (``exposition`` writes the text format, ``pushgateway`` sends it); Prometheus
scrapes the gateway (with ``honor_labels: true``) and the chart's PrometheusRule alerts on it.
"""
