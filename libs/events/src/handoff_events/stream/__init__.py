"""Handoff's one stateful stream-processing mechanism (see api.py and engine.py)."""
