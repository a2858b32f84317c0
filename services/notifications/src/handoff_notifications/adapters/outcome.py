"""What a channel reports after one attempt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    detail: str
    permanent: bool = False
    """True when retrying cannot help (bad address, 4xx from the provider, broken template)."""

    @classmethod
    def sent(cls, detail: str = "accepted") -> SendResult:
        return cls(True, detail)

    @classmethod
    def transient(cls, detail: str) -> SendResult:
        return cls(False, detail)

    @classmethod
    def rejected(cls, detail: str) -> SendResult:
        return cls(False, detail, permanent=True)
