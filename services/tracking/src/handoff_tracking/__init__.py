"""Handoff tracking."""
