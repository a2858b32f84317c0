"""The shared OpenAPI builder, and the committed documents every HTTP service builds with it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import httpx
import jsonschema
import msgspec
import pytest
from handoff_events.contracts import OrderCancelled, RatesQuoted
from handoff_events.examples import EXAMPLES
from handoff_events.runtime.app import ServiceApp
from handoff_events.runtime.http import Problem, decode_body
from handoff_events.runtime.openapi import (
    JSON_BODY_ERRORS,
    NOT_JSON,
    PROBLEM_SCHEMA,
    TENANT_API_KEY,
    UNAUTHORIZED,
    HttpApi,
    JsonReply,
    Operation,
    Parameter,
    ProblemReply,
    StaleDocument,
    build_document,
    cli,
    render,
    webhook_signature,
    write_or_check,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DOCUMENTS = sorted(ROOT.glob("services/*/openapi.json"))


class Dimensions(msgspec.Struct, frozen=True, kw_only=True):
    length_mm: int
    width_mm: int


class Booking(msgspec.Struct, frozen=True, kw_only=True):
    booking_id: str
    weight_g: int
    size: Dimensions
    note: str | None = None


class Booked(msgspec.Struct, frozen=True, kw_only=True):
    booking_id: str
    size: Dimensions


BookingId = Annotated[str, msgspec.Meta(pattern="^B-[0-9]+$")]
EXAMPLE = Booking(booking_id="B-1", weight_g=1200, size=Dimensions(length_mm=300, width_mm=200))


def _operations() -> list[Operation]:
    return [
        Operation(
            path="/v1/bookings",
            method="post",
            operation_id="book",
            summary="Book",
            request=Booking,
            example=EXAMPLE,
            responses={
                422: ProblemReply(description="bad body", reasons=("a", "b")),
                202: JsonReply(description="booked", body=Booked),
                400: NOT_JSON,
                401: UNAUTHORIZED,
            },
        ),
        Operation(
            path="/v1/bookings/{booking_id}",
            method="get",
            operation_id="getBooking",
            summary="One booking",
            parameters=[
                Parameter(name="booking_id", location="path", schema=BookingId),
                Parameter(name="as_of", location="query", schema={"type": "string"}),
            ],
            responses={200: JsonReply(description="the booking", body=Booking)},
        ),
        Operation(
            path="/v1/hooks/{carrier}",
            method="post",
            operation_id="hook",
            summary="A signed webhook",
            security=webhook_signature("CarrierSignature", "X-Sig", "HMAC of the body"),
            parameters=[Parameter(name="carrier", location="path")],
            request=list[Dimensions],
            responses={202: JsonReply(description="stored", body=int)},
        ),
    ]


def _document() -> dict[str, Any]:
    return build_document(
        title="Bookings", version="2.0.0", description="test", operations=_operations()
    )


def _refs(node: Any) -> set[str]:
    return set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(node)))


def test_components_come_from_the_msgspec_types_once_with_the_shared_problem() -> None:
    doc = _document()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "Bookings" and doc["info"]["version"] == "2.0.0"
    schemas = doc["components"]["schemas"]
    assert set(schemas) == {"Booking", "Booked", "Dimensions", "Problem"}
    assert schemas["Problem"] == PROBLEM_SCHEMA
    assert set(PROBLEM_SCHEMA["properties"]) == {
        "type",
        "title",
        "status",
        "detail",
        "reason",
        "field",
        "value",
        "errors",
    }
    assert _refs(doc) <= set(schemas)
    book = doc["paths"]["/v1/bookings"]["post"]
    body = book["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Booking"}
    hook = doc["paths"]["/v1/hooks/{carrier}"]["post"]
    assert hook["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Dimensions"},
    }
    assert hook["responses"]["202"]["content"]["application/json"]["schema"] == {"type": "integer"}


def test_replies_are_ordered_by_status_and_problems_name_their_reasons() -> None:
    responses = _document()["paths"]["/v1/bookings"]["post"]["responses"]
    assert list(responses) == ["202", "400", "401", "422"]
    assert responses["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Booked"
    }
    problem = responses["422"]
    assert problem["description"] == "bad body (reason: a, b)"
    assert problem["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert responses["401"]["description"] == "No valid tenant API key (reason: unauthorized)"


def test_security_schemes_are_defined_once_and_only_when_used() -> None:
    doc = _document()
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"TenantApiKey", "TenantBearer", "CarrierSignature"}
    assert schemes["TenantApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "The tenant's API key; the tenant is derived from it.",
    }
    assert schemes["TenantBearer"]["scheme"] == "bearer"
    assert schemes["CarrierSignature"]["name"] == "X-Sig"
    # Either tenant header is enough: two alternative requirements, not one with both.
    assert doc["paths"]["/v1/bookings"]["post"]["security"] == [
        {"TenantApiKey": []},
        {"TenantBearer": []},
    ]
    assert doc["paths"]["/v1/hooks/{carrier}"]["post"]["security"] == [{"CarrierSignature": []}]
    public = Operation(
        path="/v1/ping",
        method="get",
        operation_id="ping",
        summary="ping",
        security=None,
        responses={200: JsonReply(description="pong", body=str)},
    )
    alone = build_document(title="t", version="1", description="d", operations=[public])
    assert alone["components"]["securitySchemes"] == {}
    assert "security" not in alone["paths"]["/v1/ping"]["get"]
    assert TENANT_API_KEY.requirements() == [{"TenantApiKey": []}, {"TenantBearer": []}]


def test_parameters_take_a_type_or_a_schema_and_path_parameters_are_required() -> None:
    params = _document()["paths"]["/v1/bookings/{booking_id}"]["get"]["parameters"]
    assert params == [
        {
            "name": "booking_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^B-[0-9]+$"},
        },
        {"name": "as_of", "in": "query", "required": False, "schema": {"type": "string"}},
    ]


def test_examples_are_json_ready_and_valid_for_their_schema() -> None:
    doc = _document()
    media = doc["paths"]["/v1/bookings"]["post"]["requestBody"]["content"]["application/json"]
    assert media["example"] == {
        "booking_id": "B-1",
        "weight_g": 1200,
        "size": {"length_mm": 300, "width_mm": 200},
        "note": None,
    }
    _validate(media["example"], media["schema"], doc)
    with pytest.raises(jsonschema.ValidationError):
        _validate({**media["example"], "weight_g": "heavy"}, media["schema"], doc)


def test_a_path_and_method_described_twice_or_a_type_named_problem_is_refused() -> None:
    twice = [*_operations(), _operations()[0]]
    with pytest.raises(ValueError, match="POST /v1/bookings is described twice"):
        build_document(title="t", version="1", description="d", operations=twice)

    undeclared = Operation(
        path="/v1/bookings/{booking_id}",
        method="get",
        operation_id="g",
        summary="g",
        responses={200: JsonReply(description="b", body=Booking)},
    )
    with pytest.raises(ValueError, match=r"path parameters \[\] != \['booking_id'\]"):
        build_document(title="t", version="1", description="d", operations=[undeclared])

    class Problem(msgspec.Struct):
        reason: str

    shadow = Operation(
        path="/x",
        method="get",
        operation_id="x",
        summary="x",
        responses={200: JsonReply(description="x", body=Problem)},
    )
    with pytest.raises(ValueError, match="shadow the shared Problem"):
        build_document(title="t", version="1", description="d", operations=[shadow])


def test_integral_floats_are_schema_valid_integers_but_refused_with_a_422_naming_the_field() -> (
    None
):
    """The documented ST202 case: JSON Schema calls 1200.0 an integer; msgspec does not."""
    doc = _document()
    schema = {"$ref": "#/components/schemas/Booking"}
    body = {"booking_id": "B-1", "weight_g": 1200.0, "size": {"length_mm": 300, "width_mm": 200}}
    _validate(body, schema, doc)
    with pytest.raises(Problem) as refused:
        decode_body(Booking, json.dumps(body).encode())
    assert (refused.value.status, refused.value.field) == (422, "$.weight_g")


def test_write_or_check_writes_then_accepts_and_refuses_a_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "openapi.json"
    doc = _document()
    with pytest.raises(StaleDocument, match="is missing: run `make it`"):
        write_or_check(doc, path, refresh="make it")
    assert write_or_check(doc, path, write=True) is True
    assert path.read_text(encoding="utf-8") == render(doc)
    assert render(doc).endswith("}\n")
    assert write_or_check(doc, path) is False
    assert write_or_check(doc, path, write=True) is False
    doc["info"]["version"] = "2.0.1"
    with pytest.raises(StaleDocument, match="is stale"):
        write_or_check(doc, path)
    assert isinstance(StaleDocument("x"), AssertionError)  # reads as a test failure


def test_the_cli_prints_writes_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "openapi.json"
    assert cli(_document, path, "handoff_x.openapi", []) == 0
    assert json.loads(capsys.readouterr().out) == _document()
    assert cli(_document, path, "handoff_x.openapi", ["--check"]) == 1
    assert "python -m handoff_x.openapi --write" in capsys.readouterr().err
    assert cli(_document, path, "handoff_x.openapi", ["--write"]) == 0
    assert cli(_document, path, "handoff_x.openapi", ["--check"]) == 0
    assert "up to date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(_document, path, "handoff_x.openapi", ["--write", "--check"])


def test_an_http_api_builds_checks_and_refreshes_its_committed_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = HttpApi(
        title="Bookings",
        version="2.0.0",
        description="test",
        operations=_operations(),
        module="handoff_bookings.openapi",
        committed_file=tmp_path / "openapi.json",
    )
    assert api.document() == _document()
    with pytest.raises(
        StaleDocument, match=re.escape("python -m handoff_bookings.openapi --write")
    ):
        api.check_committed()
    assert api.main(["--write"]) == 0
    api.check_committed()
    assert json.loads(api.committed.read_text(encoding="utf-8")) == _document()
    assert set(JSON_BODY_ERRORS) == {400, 401, 413}
    with pytest.raises(TypeError):
        JSON_BODY_ERRORS[500] = NOT_JSON  # type: ignore[index]


def test_the_committed_file_is_found_from_the_service_module() -> None:
    api = HttpApi(title="t", description="d", operations=[], module="handoff_returns.openapi")
    assert api.committed == ROOT / "services" / "returns" / "openapi.json"
    with pytest.raises(LookupError, match="handoff_nowhere"):
        _ = HttpApi(title="t", description="d", operations=[], module="handoff_nowhere.x").committed


def test_a_contract_event_body_gets_its_catalogue_example_unless_one_is_given() -> None:
    quoted = EXAMPLES[RatesQuoted.ce_type]
    given = {"reason": "mine"}
    ops = [
        Operation(
            path="/q",
            method="post",
            operation_id="q",
            summary="q",
            request=OrderCancelled,
            example=given,
            responses={200: JsonReply(description="quotes", body=RatesQuoted)},
        ),
        Operation(
            path="/p",
            method="post",
            operation_id="p",
            summary="p",
            request=OrderCancelled,
            responses={200: JsonReply(description="no example", body=Booked)},
        ),
    ]
    paths = build_document(title="t", version="1", description="d", operations=ops)["paths"]
    q, p = paths["/q"]["post"], paths["/p"]["post"]
    assert q["requestBody"]["content"]["application/json"]["example"] == given
    assert q["responses"]["200"]["content"]["application/json"]["example"] == (
        msgspec.to_builtins(quoted)
    )
    assert p["requestBody"]["content"]["application/json"]["example"] == msgspec.to_builtins(
        EXAMPLES[OrderCancelled.ce_type]
    )
    assert "example" not in p["responses"]["200"]["content"]["application/json"]


def test_every_service_commits_a_document_for_its_http_api() -> None:
    names = {p.parent.name for p in SERVICE_DOCUMENTS}
    assert {"order_intake", "rate_shopping", "returns", "tracking"} <= names


@pytest.mark.parametrize("path", SERVICE_DOCUMENTS, ids=lambda p: p.parent.name)
def test_each_committed_document_is_self_contained_and_its_examples_valid(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    assert _refs(doc) <= set(schemas)
    assert schemas["Problem"] == PROBLEM_SCHEMA
    operation_ids = []
    for methods in doc["paths"].values():
        for operation in methods.values():
            operation_ids.append(operation["operationId"])
            for requirement in operation.get("security", []):
                assert set(requirement) <= set(doc["components"]["securitySchemes"])
            bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
            for body in bodies:
                media = body.get("content", {}).get("application/json")
                if media and "example" in media:
                    _validate(media["example"], media["schema"], doc)
    assert len(operation_ids) == len(set(operation_ids))


def _app(service: str) -> ServiceApp:
    """The service as `python -m handoff_<service>` builds it (nothing started)."""
    if service == "order_intake":
        from handoff_order_intake.bootstrap import build_app as order_intake
        from handoff_order_intake.settings import OrderIntakeSettings

        return order_intake(OrderIntakeSettings())
    if service == "rate_shopping":
        from handoff_rate_shopping.bootstrap import build_app as rate_shopping
        from handoff_rate_shopping.settings import RateShoppingSettings

        return rate_shopping(RateShoppingSettings())
    if service == "returns":
        from handoff_returns.bootstrap import build_app as returns

        return returns()
    from handoff_tracking.bootstrap import build_app as tracking
    from handoff_tracking.settings import TrackingSettings

    return tracking(TrackingSettings())


@pytest.mark.parametrize("service", ["order_intake", "rate_shopping", "returns", "tracking"])
async def test_each_service_serves_its_committed_document(service: str) -> None:
    transport = httpx.ASGITransport(app=_app(service).http)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    committed = ROOT / "services" / service / "openapi.json"
    assert response.json() == json.loads(committed.read_text(encoding="utf-8"))


def _validate(instance: Any, schema: dict[str, Any], doc: dict[str, Any]) -> None:
    # `#/components/...` refs resolve against the root, so the root carries the components.
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(instance)
