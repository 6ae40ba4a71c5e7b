"""Adapters that bring signals in: the embedded scraper, log tailing, and later Prometheus, Alertmanager, OTLP."""
