"""Handoff carrier allocation."""
