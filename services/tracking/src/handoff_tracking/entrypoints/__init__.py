"""Tracking's HTTP entry points (the queries; the carrier webhook lives in `ingress`)."""
