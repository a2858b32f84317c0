"""Handoff sim."""
