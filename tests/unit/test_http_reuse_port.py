"""`http_reuse_port`: several processes of one service can listen on one HTTP port (the
webhook edge, one process per core); without it a second bind of the port fails loudly."""

from __future__ import annotations

import socket

import pytest
from handoff_events.runtime.app import ServiceApp
from handoff_events.runtime.settings import ServiceSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _app(reuse: bool) -> ServiceApp:
    return ServiceApp("tracking", ServiceSettings(http_host="127.0.0.1", http_reuse_port=reuse))


def test_two_listeners_share_a_port_with_reuse_port() -> None:
    port = _free_port()
    first, second = _app(True)._listen(port), _app(True)._listen(port)
    try:
        first.listen()
        second.listen()
        assert first.getsockname()[1] == second.getsockname()[1] == port
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the kernel hands the connection to one of them
    finally:
        first.close()
        second.close()


def test_without_reuse_port_the_second_bind_fails() -> None:
    port = _free_port()
    first = _app(False)._listen(port)
    try:
        first.listen()
        with pytest.raises(OSError):
            _app(False)._listen(port)
    finally:
        first.close()
