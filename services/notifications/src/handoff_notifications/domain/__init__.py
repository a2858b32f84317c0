"""Pure notification logic: rules, milestones, preferences, backoff, the ledger.

No I/O, no clock reads: time is always a parameter.
"""
