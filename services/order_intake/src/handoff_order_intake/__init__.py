"""Handoff order intake."""
