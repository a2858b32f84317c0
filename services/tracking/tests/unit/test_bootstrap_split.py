"""The tracking service's split deployments (`HANDOFF_TRACKING_STAGES`): what each
one runs. The webhook-only edge must not run any stage (the stages' deployment owns the
partitions), and the fold-only one must not serve the webhook."""

from __future__ import annotations

from pathlib import Path

from handoff_tracking.bootstrap import build_app, build_fold_app, build_ingress_app
from handoff_tracking.settings import TrackingSettings
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[4]


def _settings() -> TrackingSettings:
    return TrackingSettings(config_dir=REPO / "deploy" / "config")


def _paths(app: object) -> set[str]:
    routes = app.http.routes  # type: ignore[attr-defined]
    return {r.path for r in routes if isinstance(r, Route)}


def test_ingress_only_serves_the_webhook_and_runs_no_stage() -> None:
    app = build_ingress_app(_settings())
    assert app.engines == []
    assert "/v1/carriers/{carrier}/events" in _paths(app)
    assert not any(p.startswith("/v1/shipments") for p in _paths(app))


def test_fold_only_runs_the_fold_and_no_webhook() -> None:
    app = build_fold_app(_settings())
    assert [e.processor.stage for e in app.engines] == ["fold"]
    assert "/v1/carriers/{carrier}/events" not in _paths(app)


def test_the_whole_service_runs_join_fold_and_kpis_with_the_webhook() -> None:
    app = build_app(_settings())
    assert {e.processor.stage for e in app.engines} >= {"join", "fold"}
    assert "/v1/carriers/{carrier}/events" in _paths(app)
