"""Evaluation suite of pvvae."""
