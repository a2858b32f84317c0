"""Handoff returns."""
