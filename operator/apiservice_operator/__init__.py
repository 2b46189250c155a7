"""Kubernetes operator that turns one ApiService resource into a running API-only service stack."""

__version__ = "0.1.0"
