"""Handoff's shared contract: event types, the CloudEvents Kafka envelope, the topic catalogue.

The `handoff_events.runtime` and `handoff_events.stream` subpackages hold the one
service runtime and the one stateful stream-processing mechanism every service uses.
"""

from handoff_events.envelope import DecodeError, Envelope, decode, encode, new_envelope

__all__ = ["DecodeError", "Envelope", "decode", "encode", "new_envelope"]
