"""aiops: an Alertmanager webhook receiver that triages incidents against your runbooks."""

__version__ = "0.1.0"
