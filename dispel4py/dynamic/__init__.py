"""The dynamic engine."""
