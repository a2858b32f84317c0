"""Adapters at the edge of the returns service: data files."""
