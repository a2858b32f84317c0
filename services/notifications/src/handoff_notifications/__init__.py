"""Handoff notifications."""
