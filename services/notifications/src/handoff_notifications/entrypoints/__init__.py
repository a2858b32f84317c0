"""The notifications service's HTTP edge."""
