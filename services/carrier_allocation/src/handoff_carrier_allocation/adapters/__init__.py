"""Adapters at the edge: data files, the KPI follower, the HTTP tender relay."""
