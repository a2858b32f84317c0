"""Tracking's adapters: the state topic's envelope codec and the query read models."""
