"""indexers.retry: the one retry policy, Retry-After parser, transient classifier and retry loop (no network)."""

from __future__ import annotations

import email.utils
import math

import pytest

from indexers.errors import ConfigError, TransientError
from indexers.retry import RetryPolicy, attempts_of, is_transient, parse_retry_after, retry_after_of
from pipelines.errors import CorruptDocumentError, ParseError, SourceError

NOW = 1_700_000_000.0


class _Http(Exception):
    """An SDK-like HTTP error: ``status_code`` and ``response.headers`` (as azure-core and openai have)."""

    def __init__(self, status, headers=None):
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.response = type("R", (), {"headers": headers or {}, "status_code": status})()


# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize("headers, seconds", [
    ({"Retry-After": "2"}, 2.0),
    ({"retry-after": "0"}, 0.0),
    ({"Retry-After": "1.5"}, 1.5),  # fractional (non-standard, sent by some gateways)
    ({"Retry-After": " 7 "}, 7.0),
    ({"retry-after-ms": "250"}, 0.25),
    ({"x-ms-retry-after-ms": "100"}, 0.1),
    ({"X-Ms-Retry-After-Ms": "1500", "Retry-After": "9"}, 1.5),  # ms headers win, names case-insensitive
    ({"retry-after-ms": "12.5"}, 0.0125),
    ({"Retry-After": email.utils.formatdate(NOW + 10, usegmt=True)}, 10.0),  # HTTP-date
    ({"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10.0),
    ({"Retry-After": email.utils.formatdate(NOW - 60, usegmt=True)}, 0.0),  # a date in the past: go now
    ({"Retry-After": "86400000"}, 86400000.0),  # huge: returned, the policy caps it
])
def test_parse_retry_after_values(headers, seconds):
    assert parse_retry_after(headers, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("headers", [
    None, {}, {"Retry-After": ""}, {"Retry-After": "soon"}, {"Retry-After": "-5"}, {"retry-after-ms": "-1"},
    {"Retry-After": "nan"}, {"Retry-After": "Wed, 99 Foo 2015 07:28:00 GMT"}, {"Retry-After": "1e"},
    {"other": "3"}, ["not", "a", "mapping"],
])
def test_parse_retry_after_garbage_is_none(headers):
    assert parse_retry_after(headers, now=NOW) is None


def test_a_bad_ms_header_falls_back_to_retry_after():
    assert parse_retry_after({"retry-after-ms": "soon", "Retry-After": "3"}) == 3.0


def test_retry_after_of_reads_our_errors_and_sdk_responses():
    assert retry_after_of(TransientError("busy", retry_after=4.0)) == 4.0
    assert retry_after_of(_Http(429, {"retry-after-ms": "20"})) == pytest.approx(0.02)
    assert retry_after_of(_Http(503)) is None
    assert retry_after_of(ValueError("x")) is None and retry_after_of(None) is None


# ---------------------------------------------------------------- what is transient


def test_is_transient():
    assert is_transient(TransientError("busy"))
    assert all(is_transient(_Http(s)) for s in (408, 429, 500, 502, 503, 504))
    assert not any(is_transient(_Http(s)) for s in (400, 401, 403, 404, 409, 413, 422))
    assert is_transient(TimeoutError()) and is_transient(ConnectionResetError())
    never = [CorruptDocumentError("bad", doc_id="x"), ParseError("bad"), SourceError("denied"), ConfigError("x"),
             ValueError("bug"), KeyError("k")]
    assert not any(is_transient(e) for e in never)
    assert not is_transient(None)


def test_sdk_connection_errors_are_transient_by_class_name():
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError
    import httpx
    import openai

    request = httpx.Request("POST", "http://x")
    assert is_transient(ServiceRequestError("refused")) and is_transient(ServiceResponseError("cut"))
    assert is_transient(openai.APIConnectionError(request=request))
    assert is_transient(openai.APITimeoutError(request=request))
    assert is_transient(httpx.ConnectError("refused")) and is_transient(httpx.ReadTimeout("slow"))


def test_attempts_of():
    assert attempts_of(TransientError("x", attempts=5)) == 5
    assert attempts_of(TransientError("x")) == 1 and attempts_of(_Http(503)) == 1 and attempts_of(None) == 1


# ---------------------------------------------------------------- the policy


@pytest.mark.parametrize("kwargs", [
    {"attempts": 0}, {"attempts": -1}, {"attempts": 2.5}, {"attempts": True}, {"backoff_seconds": -1},
    {"backoff_seconds": math.nan}, {"max_backoff_seconds": math.inf}, {"jitter": 1.5}, {"jitter": -0.1},
    {"max_retry_after_seconds": -1}, {"backoff_seconds": 10, "max_backoff_seconds": 1},
])
def test_policy_validates_itself(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_backoff_grows_caps_and_jitters():
    p = RetryPolicy(attempts=10, backoff_seconds=1.0, max_backoff_seconds=5.0, jitter=0.0)
    assert [p.backoff(i) for i in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert p.delays() == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0] and p.retries == 9
    j = RetryPolicy(backoff_seconds=1.0, jitter=0.2)
    assert j.backoff(0, rng=lambda: 0.0) == pytest.approx(0.8) and j.backoff(0, rng=lambda: 1.0) == pytest.approx(1.2)
    assert RetryPolicy().backoff(10_000, rng=lambda: 0.5) == 30.0  # no overflow far out: the cap
    assert RetryPolicy.off().attempts == 1 and RetryPolicy.off().delays() == [0.5]


def test_delay_prefers_the_services_retry_after_capped():
    p = RetryPolicy(backoff_seconds=1.0, jitter=0.0, max_retry_after_seconds=30.0)
    assert p.delay(0, TransientError("x", retry_after=0.05)) == 0.05  # the service knows best, even if shorter
    assert p.delay(0, _Http(429, {"Retry-After": "3600"})) == 30.0  # capped
    assert p.delay(2, _Http(503)) == 4.0  # no Retry-After: the backoff


# ---------------------------------------------------------------- the loop


class Flaky:
    def __init__(self, *errors, result="ok"):
        self.errors, self.result, self.calls = list(errors), result, 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def test_call_retries_transient_failures_then_returns():
    slept: list[float] = []
    fn = Flaky(_Http(429, {"retry-after-ms": "10"}), _Http(503), TimeoutError())
    policy = RetryPolicy(attempts=4, backoff_seconds=1.0, jitter=0.0)
    assert policy.call(fn, what="t", sleep=slept.append) == "ok"
    assert fn.calls == 4 and slept == [0.01, 2.0, 4.0]


def test_call_stops_at_the_attempts_and_maps_the_error_with_the_count():
    fn = Flaky(*[_Http(429)] * 10)
    seen = []
    with pytest.raises(TransientError) as info:
        RetryPolicy(attempts=3, backoff_seconds=0.0).call(
            fn, sleep=lambda s: None, give_up=lambda exc, n: seen.append((type(exc), n)) or TransientError(
                "still throttled", attempts=n))
    assert fn.calls == 3 and seen == [(_Http, 3)] and info.value.attempts == 3
    assert isinstance(info.value.__cause__, _Http)


def test_call_never_retries_a_permanent_error_and_reraises_it_unmapped():
    fn = Flaky(CorruptDocumentError("bad", doc_id="d"))
    with pytest.raises(CorruptDocumentError):
        RetryPolicy(attempts=5).call(fn, sleep=lambda s: pytest.fail("slept"))
    assert fn.calls == 1
    fn = Flaky(_Http(404))
    with pytest.raises(KeyError):  # give_up maps it (first attempt: n == 1)
        RetryPolicy(attempts=5).call(fn, sleep=lambda s: None, give_up=lambda exc, n: KeyError(n))
    assert fn.calls == 1


def test_before_sleep_sees_each_failure_and_delay():
    calls = []
    fn = Flaky(_Http(429, {"Retry-After": "0.5"}))
    RetryPolicy(attempts=2).call(fn, sleep=lambda s: None, before_sleep=lambda e, d, n: calls.append((e.status_code, d, n)))
    assert calls == [(429, 0.5, 1)]


def test_off_means_exactly_one_attempt():
    fn = Flaky(_Http(503), _Http(503))
    with pytest.raises(_Http):
        RetryPolicy.off().call(fn, sleep=lambda s: pytest.fail("slept"))
    assert fn.calls == 1
