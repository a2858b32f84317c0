"""The control tower's edges: Kafka followers and the metrics scraper."""
