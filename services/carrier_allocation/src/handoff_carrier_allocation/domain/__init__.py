"""Pure allocation logic: policy ranking, capacity buckets, the per-shipment allocation fold."""
