"""Webhook signatures with an injected clock: good, bad, stale, rotated secret, missing headers."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from handoff_tracking.ingress.settings import parse_carrier_secrets
from handoff_tracking.ingress.signature import SignatureError, sign, signature_header, verify

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
BODY = b'[{"carrier":"swift","tracking_number":"SW123456789"}]'


def check(
    signature: str | None,
    timestamp: str | None = str(TS),
    *,
    secrets: tuple[str, ...] = ("current",),
    body: bytes = BODY,
    now: datetime = NOW,
) -> None:
    verify(secrets=secrets, timestamp=timestamp, signature=signature, body=body, now=now)


def reason(**kwargs: object) -> str:
    with pytest.raises(SignatureError) as caught:
        check(**kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"current", f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("current", TS, BODY) == expected


def test_a_correct_signature_is_accepted() -> None:
    verified = verify(
        secrets=("current",),
        timestamp=str(TS),
        signature=f"v1={sign('current', TS, BODY)}",
        body=BODY,
        now=NOW,
    )
    assert verified.signed_at == NOW


def test_a_wrong_secret_or_altered_body_is_a_bad_signature() -> None:
    assert reason(signature=f"v1={sign('guess', TS, BODY)}") == "bad_signature"
    assert reason(signature=f"v1={sign('current', TS, BODY)}", body=BODY + b" ") == "bad_signature"
    # The timestamp is signed too: moving it invalidates the signature.
    assert (
        reason(signature=f"v1={sign('current', TS, BODY)}", timestamp=str(TS + 1))
        == "bad_signature"
    )
    assert reason(signature=f"v0={sign('current', TS, BODY)}") == "bad_signature"
    assert reason(signature="v1=") == "bad_signature"


def test_stale_and_future_timestamps_are_refused_after_the_window() -> None:
    for skew in (timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1)):
        now = NOW + skew
        assert reason(signature=f"v1={sign('current', TS, BODY)}", now=now) == "stale_timestamp"
    for skew in (timedelta(minutes=5), -timedelta(minutes=5)):
        check(f"v1={sign('current', TS, BODY)}", now=NOW + skew)


def test_a_forged_stale_request_is_reported_as_a_bad_signature() -> None:
    assert reason(signature="v1=00", now=NOW + timedelta(hours=1)) == "bad_signature"


def test_rotation_old_and_new_secrets_both_work_during_the_overlap() -> None:
    secrets = parse_carrier_secrets("swift:new-secret|old-secret,velo:v")["swift"]
    assert secrets == ("new-secret", "old-secret")
    check(f"v1={sign('old-secret', TS, BODY)}", secrets=secrets)
    check(f"v1={sign('new-secret', TS, BODY)}", secrets=secrets)
    # A carrier mid-rotation sends both signatures; one unknown signature does not spoil it.
    both = signature_header(["not-yet-configured", "old-secret"], TS, BODY)
    assert both.count("v1=") == 2
    check(both, secrets=secrets)
    check(f"t={TS}, v1={sign('new-secret', TS, BODY)}", secrets=secrets)
    # After the overlap the old secret is gone and stops working.
    assert (
        reason(signature=f"v1={sign('old-secret', TS, BODY)}", secrets=("new-secret",))
        == "bad_signature"
    )


@pytest.mark.parametrize(
    ("timestamp", "signature", "expected"),
    [
        (None, "v1=ab", "missing_timestamp"),
        ("  ", "v1=ab", "missing_timestamp"),
        ("yesterday", "v1=ab", "invalid_timestamp"),
        ("-12", "v1=ab", "invalid_timestamp"),
        ("1763712000.5", "v1=ab", "invalid_timestamp"),
        (str(TS), None, "missing_signature"),
        (str(TS), "", "missing_signature"),
    ],
)
def test_missing_or_malformed_headers(
    timestamp: str | None, signature: str | None, expected: str
) -> None:
    assert reason(timestamp=timestamp, signature=signature) == expected


def test_the_error_names_the_header() -> None:
    with pytest.raises(SignatureError) as caught:
        check(None)
    assert caught.value.field == "X-Handoff-Signature"
    with pytest.raises(SignatureError) as caught:
        check("v1=ab", timestamp=None)
    assert caught.value.field == "X-Handoff-Timestamp"


def test_carrier_secret_settings_are_validated_without_echoing_secrets() -> None:
    assert parse_carrier_secrets(" nordpost : s1 | s0 , swift:x") == {
        "nordpost": ("s1", "s0"),
        "swift": ("x",),
    }
    with pytest.raises(ValueError, match="#1") as caught:
        parse_carrier_secrets(":hunter2")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError, match="twice"):
        parse_carrier_secrets("swift:a,swift:b")
    with pytest.raises(ValueError, match="#2"):
        parse_carrier_secrets("swift:a,velo:")
