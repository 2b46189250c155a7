"""Observability: structured logging, Prometheus metrics and health endpoints."""
