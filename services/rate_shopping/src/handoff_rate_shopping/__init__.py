"""Handoff rate shopping."""
