"""Entry points of the returns service: the HTTP edge."""
