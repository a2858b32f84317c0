"""Pure logic of the control tower: the shipment board, carrier scorecards, service health."""
