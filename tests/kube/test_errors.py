"""API error responses map onto the hierarchy the handlers branch on."""

from __future__ import annotations

import json

import pytest
from elastrain.kube import errors


def status(code: int, reason: str, message: str) -> bytes:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
    return json.dumps(body | {"reason": reason, "message": message}).encode()


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (404, "NotFound", errors.NotFound),
        (409, "AlreadyExists", errors.AlreadyExists),
        (409, "Conflict", errors.Conflict),
        (422, "Invalid", errors.Invalid),
        (400, "BadRequest", errors.Invalid),
        (403, "Forbidden", errors.Forbidden),
        (401, "Unauthorized", errors.Forbidden),
        (429, "TooManyRequests", errors.Transient),
        (500, "InternalError", errors.Transient),
        (503, "ServiceUnavailable", errors.Transient),
    ],
)
def test_status_codes_map_to_classes(code: int, reason: str, cls: type[errors.ApiError]) -> None:
    err = errors.from_response(code, status(code, reason, "the server's words"))
    assert type(err) is cls
    assert err.status == code
    assert err.reason == reason
    assert err.message == "the server's words"
    assert err.retryable is (cls is errors.Transient)


def test_already_exists_is_a_conflict_but_a_stale_write_is_not_already_exists() -> None:
    assert isinstance(errors.from_response(409, status(409, "AlreadyExists", "x")), errors.Conflict)
    stale = errors.from_response(409, status(409, "Conflict", "the object has been modified"))
    assert not isinstance(stale, errors.AlreadyExists)


def test_non_status_bodies_still_give_a_message() -> None:
    err = errors.from_response(502, b"<html>bad gateway</html>")
    assert isinstance(err, errors.Transient)
    assert "bad gateway" in err.message
    assert errors.from_response(404, None).message == "HTTP 404"


def test_connection_failures_are_transient() -> None:
    err = errors.from_exception(ConnectionRefusedError("refused"))
    assert isinstance(err, errors.Transient)
    assert err.status == 0
    assert "refused" in str(err)
