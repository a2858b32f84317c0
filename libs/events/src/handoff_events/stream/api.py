"""The public surface of Handoff's one stateful stream-processing mechanism.

A service supplies a `StatefulProcessor`: the co-partitioned input topics, a
state store backed by a compacted changelog, and a `handle(envelope, ctx)`
function that reads and writes the store and emits events. The engine
(`handoff_events.stream.engine`) does the hard parts once, for every service:
one task per input partition, restore before processing, one Kafka transaction
per task and batch that commits outputs + changelog + input offsets together,
zombie fencing by a transactional id per task, DLQ routing for records that
cannot be decoded or that the handler rejects, timers (`punctuate`), readiness
and metrics.

Handlers must be deterministic functions of (state, event, ctx.now): on a
retry after a crash the same input is handed in again against the same state,
and the outputs must carry the same ids (use `new_envelope(..., caused_by=...)`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from handoff_events.contracts import Event
from handoff_events.envelope import Envelope

S = TypeVar("S")


class StateCodec(Protocol[S]):
    """How store values are written to and read from the changelog."""

    def encode(self, key: str, value: S) -> tuple[bytes, list[tuple[str, bytes]]]: ...

    def decode(self, value: bytes, headers: Sequence[tuple[str, bytes | None]]) -> S: ...


class MsgpackCodec(Generic[S]):
    """Default store codec: msgspec MessagePack of a Struct type (internal changelogs)."""

    def __init__(self, state_type: type[S]):
        self._enc = msgspec.msgpack.Encoder()
        self._dec: msgspec.msgpack.Decoder[S] = msgspec.msgpack.Decoder(state_type)

    def encode(self, key: str, value: S) -> tuple[bytes, list[tuple[str, bytes]]]:
        return self._enc.encode(value), []

    def decode(self, value: bytes, headers: Sequence[tuple[str, bytes | None]]) -> S:
        return self._dec.decode(value)


@dataclass(frozen=True, slots=True)
class Emit:
    """An output record: a catalogue topic (unprefixed), its key, the event."""

    topic: str
    key: str
    envelope: Envelope[Any]


class Store(Protocol[S]):
    """The task's key-value store. Writes become changelog records when the batch commits."""

    def get(self, key: str) -> S | None: ...

    def put(self, key: str, value: S) -> None: ...

    def delete(self, key: str) -> None: ...

    def items(self) -> Iterator[tuple[str, S]]: ...

    def __len__(self) -> int: ...


class Context(Protocol[S]):
    """What a handler may see and do while it handles one record (or a timer tick)."""

    @property
    def partition(self) -> int: ...

    @property
    def topic(self) -> str:
        """The input topic, unprefixed catalogue name ('' on a timer tick)."""
        ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> str | None: ...

    @property
    def now(self) -> datetime:
        """The injected clock's time (aware, UTC)."""
        ...

    @property
    def store(self) -> Store[S]: ...

    def emit(self, topic: str, key: str, envelope: Envelope[Any]) -> None: ...

    def due(self) -> list[tuple[str, S]]:
        """On a timer tick: the stored values that are due (see `StatefulProcessor.due`);
        every stored value if the processor has no `due` function."""
        ...

    def keep_due(self, key: str) -> None:
        """On a timer tick: hand `key` over again at the next tick although it was not
        rewritten -- the punctuator could not act on it yet (no free send slot, a paused
        endpoint). Without it, a due value left unchanged is not handed over again."""
        ...


class Rejected(Exception):
    """Raise from a handler to send the current record to the DLQ with a reason (not a crash)."""

    def __init__(
        self, reason: str, message: str, field: str | None = None, value: str | None = None
    ):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.field = field
        self.value = value


Handler = Callable[[Envelope[Event], Context[S]], Awaitable[None] | None]
Punctuator = Callable[[Context[S]], Awaitable[None] | None]


@dataclass
class StatefulProcessor(Generic[S]):
    """One stage of a service: co-partitioned inputs, one store, one handler."""

    service: str
    stage: str
    inputs: Sequence[str]
    handle: Handler[S]
    changelog: str | None = None
    codec: StateCodec[S] | None = None
    accept: dict[str, Collection[str]] | None = None
    """Accepted ce_types per input topic; default: the catalogue's event types for the topic."""
    punctuate: Punctuator[S] | None = None
    punctuate_every_s: float | None = None
    due: Callable[[S], datetime | None] | None = None
    """When a stored value next needs the timer (None: never). With it, a tick hands
    `punctuate` only the due values (`ctx.due()`), found through an index the engine keeps
    from every write and restores from a changelog header -- no scan of the store, no
    decoding of values that are not due. A value is handed over once per due time: to be
    handed over again it must be written with a later one, or kept (`Context.keep_due`)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service}.{self.stage}"
