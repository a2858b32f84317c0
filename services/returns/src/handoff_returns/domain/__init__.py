"""Pure returns logic: policies, routing, the per-shipment ledger. No I/O, no clock."""
