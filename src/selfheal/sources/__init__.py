"""Adapters that bring signals in: the embedded scraper and log tailing (later Prometheus,
Alertmanager and OTLP receivers)."""
