"""exchange-watch exporter: probes exchange REST APIs and publishes Prometheus metrics."""

__version__ = "0.1.0"
