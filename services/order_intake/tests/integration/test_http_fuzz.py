"""Schemathesis fuzzing of the served OpenAPI document: no input yields a 5xx.

The service runs on a real uvicorn server in a thread (its own event loop, the
real publisher on the real broker); schemathesis generates valid and invalid
requests from the document.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from handoff_order_intake.bootstrap import build_app
from handoff_order_intake.openapi import openapi_document
from handoff_order_intake.settings import OrderIntakeSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case

from services.order_intake.tests.integration.kafka_io import provision_intake

pytestmark = pytest.mark.kafka
SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = [SCHEMA["/v1/orders"]["POST"], SCHEMA["/v1/orders/{order_id}/cancel"]["POST"]]
CASES = st.one_of(*(op.as_strategy(mode) for op in OPERATIONS for mode in GenerationMode))


@pytest.fixture(scope="module")
def server_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    asyncio.run(provision_intake(kafka_bootstrap, prefix))
    state: Path = tmp_path_factory.mktemp("state")
    settings_ = OrderIntakeSettings(
        topic_prefix=prefix,
        partitions=3,
        kafka_bootstrap_servers=kafka_bootstrap,
        state_dir=state,
    )
    servers: list[uvicorn.Server] = []

    async def serve() -> None:
        # Built inside the server's own loop: the app's Kafka clients bind to the running loop.
        app = build_app(settings_)
        server = uvicorn.Server(
            uvicorn.Config(app.http, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        )
        servers.append(server)
        await app.publisher.start()
        try:
            await server.serve()
        finally:
            await app.publisher.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (servers and servers[0].started):
        assert thread.is_alive() and time.monotonic() < deadline, "HTTP server did not start"
        time.sleep(0.05)
    port = servers[0].servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    servers[0].should_exit = True
    thread.join(timeout=30)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=CASES)
def test_no_generated_request_gets_a_server_error(server_url: str, case: Case[Any]) -> None:
    response = case.call(base_url=server_url, headers={"Authorization": "Bearer acme-key"})
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code in {202, 400, 401, 404, 405, 413, 422}, response.text
