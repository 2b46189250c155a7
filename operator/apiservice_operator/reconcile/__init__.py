"""Reconcile layer: applies the rendered children, reads their state and computes status."""
