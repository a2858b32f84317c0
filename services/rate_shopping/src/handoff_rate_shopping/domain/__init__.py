"""Rate shopping's pure domain: the carrier catalogue model, pricing, delivery dates,
observed transit times and the rating of one shipment. No I/O, no clock reads."""
