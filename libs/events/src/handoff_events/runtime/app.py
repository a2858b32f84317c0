"""ServiceApp: one way to run any Handoff service.

It wires the stream stages (`StatefulProcessor`s run by the engine), the HTTP
edge (Starlette on uvicorn) with `/health/live`, `/health/ready`, `/metrics`
and `/openapi.json`, and a durable `EventPublisher` for HTTP routes. SIGTERM
or SIGINT drains: stop taking HTTP requests, finish and commit in-flight
batches, leave the consumer groups, exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import uvicorn
import uvloop
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from handoff_events.runtime.http import Problem, json_response, problem_handler
from handoff_events.runtime.logging import configure_logging, get_logger
from handoff_events.runtime.metrics import READY
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.api import StatefulProcessor
from handoff_events.stream.engine import StreamEngine

Hook = Callable[[], Awaitable[None]]


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: ServiceApp owns SIGTERM/SIGINT and drains
    the stream stages as well as the HTTP server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


log = get_logger("handoff.app")


T = TypeVar("T")


def run_service(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` for a service process, on uvloop (libuv's event loop).

    Every service is socket-bound (Kafka clients, the HTTP edge), and uvloop does the
    socket I/O and callback scheduling in C. The webhook benchmark measured the tracking
    service's CPU per request before and after (docs/benchmarks.md); aiokafka and uvicorn
    both support it. Tests keep the standard loop (pytest-asyncio), so the engine is
    tested on both. `HANDOFF_EVENT_LOOP=asyncio` runs the standard loop instead."""
    if os.environ.get("HANDOFF_EVENT_LOOP", "uvloop") == "asyncio":
        return asyncio.run(main)
    return uvloop.run(main)


def tune_gc() -> None:
    """Garbage-collector settings for a long-running stream process (call once at start-up).

    Every record allocates a few hundred short-lived objects, so the default threshold
    (a young collection every 700 allocations) spent 15-25% of the fold's CPU (measured
    on the real fold handler and engine with a fake producer). Objects alive at start-up
    (modules, configuration) are frozen out of every later collection, and young
    collections run every 20,000 allocations; reference cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


class ServiceApp:
    def __init__(
        self,
        service: str,
        settings: ServiceSettings,
        processors: Sequence[StatefulProcessor[Any]] = (),
        routes: Sequence[BaseRoute] = (),
        openapi: dict[str, Any] | None = None,
        on_start: Sequence[Hook] = (),
        on_stop: Sequence[Hook] = (),
        clock: Callable[[], Any] | None = None,
        ready_checks: dict[str, Callable[[], bool]] | None = None,
    ):
        self.service = service
        self.settings = settings
        self.instance_id = settings.instance_id or f"{socket.gethostname()}-{os.getpid()}"
        self.engines = [StreamEngine(p, settings, clock=clock) for p in processors]
        self.publisher = EventPublisher(settings, client_id=f"{service}-http-{self.instance_id}")
        self.openapi = openapi
        self._ready_checks = dict(ready_checks or {})
        """Extra readiness conditions, e.g. a query replica that must have caught up."""
        self._asyncapi_doc: dict[str, Any] | None = None
        self._on_start = list(on_start)
        self._on_stop = list(on_stop)
        self._stopping = asyncio.Event()
        self._started = False
        self.http = Starlette(
            routes=[
                Route("/health/live", self._live),
                Route("/health/ready", self._ready),
                Route("/metrics", self._metrics),
                Route("/openapi.json", self._openapi),
                Route("/asyncapi.json", self._asyncapi),
                *routes,
            ],
            exception_handlers={Problem: problem_handler},
        )
        self.http.state.app = self

    @property
    def ready(self) -> bool:
        return (
            self._started
            and all(e.ready for e in self.engines)
            and all(check() for check in self._ready_checks.values())
        )

    async def _live(self, request: Request) -> Response:
        return json_response({"status": "live", "service": self.service})

    async def _ready(self, request: Request) -> Response:
        detail: dict[str, Any] = {e.processor.name: e.status() for e in self.engines}
        detail.update({name: {"ready": check()} for name, check in self._ready_checks.items()})
        ok = self.ready
        return json_response(
            {"status": "ready" if ok else "not_ready", "service": self.service, "stages": detail},
            200 if ok else 503,
        )

    async def _metrics(self, request: Request) -> Response:
        READY.labels(self.service).set(1 if self.ready else 0)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def _openapi(self, request: Request) -> Response:
        if self.openapi is None:
            raise Problem(404, "Not found", "this service has no HTTP API", reason="not_found")
        return json_response(self.openapi)

    async def _asyncapi(self, request: Request) -> Response:
        """The event contract (AsyncAPI 3.0), the same document as docs/asyncapi.json."""
        if self._asyncapi_doc is None:
            from handoff_events.asyncapi import build

            self._asyncapi_doc = build()
        return json_response(self._asyncapi_doc)

    async def start(self) -> None:
        """Start publisher, engines and hooks (not the HTTP server): for embedding in tests."""
        await self.publisher.start()
        for hook in self._on_start:
            await hook()
        for engine in self.engines:
            await engine.start()
        self._started = True

    async def stop(self) -> None:
        started = time.monotonic()
        await asyncio.gather(*(e.stop() for e in self.engines), return_exceptions=True)
        for hook in self._on_stop:
            await hook()
        await self.publisher.stop()
        log.info("stopped", drain_seconds=round(time.monotonic() - started, 3))

    def _listen(self, port: int) -> socket.socket:
        """The HTTP listening socket; with `http_reuse_port`, several processes of one
        service share the port and the kernel spreads connections across them
        (SO_REUSEPORT): more cores for an HTTP edge without a proxy in front."""
        family = socket.AF_INET6 if ":" in self.settings.http_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.settings.http_reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.settings.http_host, port))
        return sock

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT, then drain and exit."""
        configure_logging(self.service, self.settings.log_level, self.settings.log_json)
        tune_gc()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        config = uvicorn.Config(
            self.http,
            host=self.settings.http_host,
            port=self.settings.port_for(self.service),
            log_level="warning",
            lifespan="off",
            access_log=False,
            # The C parser (a declared dependency), not h11: a third less CPU per request.
            http="httptools",
        )
        server = _QuietServer(config)
        serve = asyncio.create_task(server.serve(sockets=[self._listen(config.port)]))
        await self.start()
        log.info("started", port=config.port, stages=[e.processor.name for e in self.engines])
        failed = [e.failure for e in self.engines]
        waiters = [asyncio.create_task(self._stopping.wait())]
        waiters += [asyncio.create_task(f.wait()) for f in failed]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        log.info("stopping")
        server.should_exit = True
        await self.stop()
        await serve
        for engine in self.engines:
            if engine.failure.is_set():
                raise SystemExit(f"stage {engine.processor.name} failed: {engine.error!r}")
