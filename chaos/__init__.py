"""Handoff's chaos harness: the shipment pipeline on the 3-broker cluster, faults, and the
oracle check that proves nothing was lost, changed or published twice (docs/reliability.md)."""
