"""Order intake's pure domain: validation, normalisation, splitting, idempotency, cancellation.

Nothing in this package performs I/O or reads a clock: time arrives as a parameter.
"""
