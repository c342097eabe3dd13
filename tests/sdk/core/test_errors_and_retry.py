"""Error mapping (gateway code first, then status) and the retry policy."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from agentfm import (
    AgentFMError,
    AgentFMTimeoutError,
    AsyncCapacityError,
    AuthenticationError,
    DispatchRefusedError,
    GatewayConnectionError,
    GatewayInternalError,
    GatewayProtocolError,
    InvalidRequestError,
    LedgerNotFoundError,
    LedgerUnavailableError,
    MeshOverloadedError,
    ModelNotFoundError,
    NotSelfSubmitterError,
    RateLimitError,
    SignatureRejectedError,
    WorkerNotFoundError,
    WorkerStreamError,
    WorkerUnreachableError,
)
from agentfm._base_client import (
    RetryPolicy,
    error_from_response,
    error_from_transport,
    parse_retry_after,
    resolve_timeout,
)
from agentfm.exceptions import from_envelope

PLAIN = {"content-type": "text/plain; charset=utf-8"}
JSON = {"content-type": "application/json"}


def envelope(code: str, message: str = "m", type_: str = "server_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "model_not_found", ModelNotFoundError),
        (503, "mesh_overloaded", MeshOverloadedError),
        (503, "async_capacity_exhausted", AsyncCapacityError),
        (429, "rate_limited", RateLimitError),
        (502, "worker_unreachable", WorkerUnreachableError),
        (502, "worker_stream_failed", WorkerStreamError),
        (400, "prompt_required", InvalidRequestError),
        (405, "method_not_allowed", InvalidRequestError),
        (500, "internal_error", GatewayInternalError),
        (401, "unauthorized", AuthenticationError),
        (401, "invalid_api_key", AuthenticationError),
        (500, "mesh_overloaded", MeshOverloadedError),  # the code wins over the status
    ],
)
def test_envelope_code_first(status: int, code: str, cls: type[AgentFMError]) -> None:
    err = error_from_response(status, JSON, envelope(code, "boom"))
    assert type(err) is cls
    assert (err.status, err.code, err.message) == (status, code, "boom")


def test_unknown_code_falls_back_to_status_then_base() -> None:
    assert type(error_from_response(502, JSON, envelope("weird"))) is WorkerUnreachableError
    err = error_from_response(503, JSON, envelope("some_new_code"))
    assert type(err) is AgentFMError
    assert err.code == "some_new_code"
    assert isinstance(error_from_response(403, JSON, envelope("some_403")), DispatchRefusedError)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (503, "ledger_unavailable", LedgerUnavailableError),
        (503, "comments_unavailable", LedgerUnavailableError),
        (501, "not_implemented", LedgerUnavailableError),
        (404, "entry_not_found", LedgerNotFoundError),
        (404, "comment_not_found", LedgerNotFoundError),
        (401, "bad_signature", SignatureRejectedError),
        (403, "non_self_submitter", NotSelfSubmitterError),
        (400, "bad_cid", InvalidRequestError),
        (400, "bad_rating", InvalidRequestError),
        (500, "append_failed", GatewayInternalError),
    ],
)
def test_peers_codes_map_to_ledger_errors(status: int, code: str, cls: type[Exception]) -> None:
    err = error_from_response(status, JSON, envelope(code))
    assert type(err) is cls
    assert not isinstance(err, AuthenticationError)  # a bad signature is not a bad API key


@pytest.mark.parametrize(
    ("status", "body", "cls", "also"),
    [
        (400, "Invalid task_id format\n", InvalidRequestError, GatewayProtocolError),
        (405, "Method not allowed\n", InvalidRequestError, GatewayProtocolError),
        (
            403,
            "dispatch refused: peer_is_equivocator\n",
            DispatchRefusedError,
            GatewayProtocolError,
        ),
        (404, "Worker not found or offline\n", WorkerNotFoundError, AgentFMError),
        (
            500,
            "Failed to connect to worker via DHT or Relay\n",
            WorkerUnreachableError,
            AgentFMError,
        ),
        (500, "Failed to send prompt\n", WorkerStreamError, AgentFMError),
        (500, "something else\n", GatewayInternalError, AgentFMError),
        (418, "teapot\n", GatewayProtocolError, AgentFMError),
    ],
)
def test_plain_text_errors_are_typed(
    status: int, body: str, cls: type[AgentFMError], also: type[AgentFMError]
) -> None:
    err = error_from_response(status, PLAIN, body.encode())
    assert isinstance(err, cls)
    assert isinstance(err, also)
    assert err.status == status
    assert body.strip() in err.message


def test_mux_404_is_a_missing_route_not_a_missing_worker() -> None:
    err = error_from_response(404, PLAIN, b"404 page not found\n")
    assert isinstance(err, GatewayProtocolError)
    assert not isinstance(err, WorkerNotFoundError)
    assert err.code == "route_not_found"


def test_malformed_envelope_and_retry_after() -> None:
    err = error_from_response(503, {"retry-after": "5", **JSON}, b'{"error": "nope"')
    assert err.retry_after == 5.0
    assert isinstance(err, AgentFMError)
    assert isinstance(from_envelope({"error": 3}, 500), GatewayProtocolError)
    assert type(from_envelope({"error": {"code": "model_not_found"}}, 404)) is ModelNotFoundError


def test_parse_retry_after() -> None:
    assert parse_retry_after("60") == 60.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    http_date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(http_date, now=1445412470.0) == 10.0


def test_transport_errors_are_wrapped_with_send_state() -> None:
    refused = error_from_transport(httpx.ConnectError("refused"), gateway_url="http://x")
    assert type(refused) is GatewayConnectionError
    assert not refused.request_sent
    pool = error_from_transport(httpx.PoolTimeout("pool"), gateway_url="http://x")
    assert isinstance(pool, AgentFMTimeoutError)
    assert not pool.request_sent
    read = error_from_transport(httpx.ReadError("reset"), gateway_url="http://x")
    assert type(read) is GatewayConnectionError
    assert read.request_sent
    mid = error_from_transport(
        httpx.RemoteProtocolError("cut"), gateway_url="http://x", phase="body"
    )
    assert isinstance(mid, WorkerStreamError)
    bad = error_from_transport(httpx.UnsupportedProtocol("ftp"), gateway_url="ftp://x")
    assert isinstance(bad, InvalidRequestError)
    assert bad.code == "invalid_gateway_url"


def _sent(err: AgentFMError, sent: bool = True) -> AgentFMError:
    err.request_sent = sent
    return err


def test_retry_policy_get() -> None:
    get = RetryPolicy(retries=2, idempotent=True)
    assert get.should_retry(AgentFMError("x", status=503))
    assert get.should_retry(AgentFMError("x", status=502))
    assert not get.should_retry(AgentFMError("x", status=404))
    assert not get.should_retry(RateLimitError("x", status=429, code="rate_limited"))
    assert get.should_retry(AgentFMError("x", status=429))
    assert not get.should_retry(AgentFMError("x", status=503, retry_after=3600))
    assert get.should_retry(_sent(GatewayConnectionError("reset")))
    assert not get.should_retry(_sent(AgentFMTimeoutError("slow")))
    assert not get.should_retry(ValueError("not ours"))


def test_retry_policy_post_only_when_never_sent() -> None:
    post = RetryPolicy(retries=2, idempotent=False)
    assert not post.should_retry(
        AsyncCapacityError("full", status=503, code="async_capacity_exhausted")
    )
    assert not post.should_retry(AgentFMError("x", status=502))
    assert not post.should_retry(_sent(GatewayConnectionError("reset after send")))
    assert post.should_retry(_sent(GatewayConnectionError("refused"), sent=False))
    assert post.should_retry(_sent(AgentFMTimeoutError("pool"), sent=False))


def test_retry_delay_backoff_jitter_and_retry_after() -> None:
    policy = RetryPolicy(retries=3, idempotent=True)
    rng = random.Random(1)
    first = policy.delay(1, AgentFMError("x"), rng)
    second = policy.delay(2, AgentFMError("x"), rng)
    assert 0.5 <= first <= 0.75
    assert 1.0 <= second <= 1.25
    assert policy.delay(1, AgentFMError("x", retry_after=7.0), rng) == 7.0
    assert policy.delay(10, None, rng) <= policy.backoff_max + policy.jitter


def test_resolve_timeout() -> None:
    client = httpx.Timeout(30.0, connect=5.0)
    assert resolve_timeout(client, None, "short") is client
    long = resolve_timeout(client, None, "long")
    assert long.read is None
    assert long.connect == 5.0
    assert resolve_timeout(client, 2.0, "long") == httpx.Timeout(2.0)


def test_error_repr_and_pickle() -> None:
    import pickle

    err = WorkerNotFoundError("gone", code="worker_not_found", status=404)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is WorkerNotFoundError
    assert (again.message, again.code, again.status) == ("gone", "worker_not_found", 404)
    assert "gone" in repr(err)
    assert str(err) == "gone"


def test_request_spec_hides_the_key() -> None:
    from agentfm import AgentFMClient
    from agentfm._base_client import RequestSpec

    client = AgentFMClient("http://127.0.0.1:9", api_key="very-secret-key-123")
    spec = client._prepare(RequestSpec("GET", "/api/workers", idempotent=True))
    assert "very-secret-key-123" not in repr(spec)
    assert "very-secret-key-123" not in repr(client)
    request = spec.build()
    assert request.headers["authorization"] == "Bearer very-secret-key-123"
    assert str(request.url) == "http://127.0.0.1:9/api/workers"
    client.close()


def _counting(outcomes: list[Any]) -> tuple[list[int], Any]:
    calls: list[int] = []

    def attempt() -> Any:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return calls, attempt


def test_call_with_retry_replays_then_retries() -> None:
    from agentfm._base_client import call_with_retry

    fast = RetryPolicy(retries=2, idempotent=True, backoff_base=0.0, jitter=0.0)
    calls, attempt = _counting([AgentFMError("x", status=503), AgentFMError("x", status=503), "ok"])
    assert call_with_retry(fast, attempt) == "ok"
    assert len(calls) == 3
    calls, attempt = _counting([AgentFMError("x", status=503)] * 5)
    with pytest.raises(AgentFMError):
        call_with_retry(fast, attempt)
    assert len(calls) == 3
    calls, attempt = _counting([AgentFMError("x", status=404)])
    with pytest.raises(AgentFMError):
        call_with_retry(fast, attempt)
    assert len(calls) == 1
    post = RetryPolicy(retries=2, idempotent=False, backoff_base=0.0, jitter=0.0)
    calls, attempt = _counting([AgentFMError("x", status=503)])
    with pytest.raises(AgentFMError):
        call_with_retry(post, attempt)
    assert len(calls) == 1


async def test_acall_with_retry() -> None:
    from agentfm._base_client import acall_with_retry

    fast = RetryPolicy(retries=1, idempotent=False, backoff_base=0.0, jitter=0.0)
    never_sent = GatewayConnectionError("refused")
    never_sent.request_sent = False
    calls, attempt = _counting([never_sent, "ok"])

    async def async_attempt() -> Any:
        return attempt()

    assert await acall_with_retry(fast, async_attempt) == "ok"
    assert len(calls) == 2
