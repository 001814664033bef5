"""Evaluation: suite runners and metrics."""
