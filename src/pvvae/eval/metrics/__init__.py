"""Metric implementations of the evaluation suite, one module per metric family."""
