import pytest

from request_api.limit_rules import (
    exceeds_in_flight,
    parse_rate_limit,
    requests_added,
    retry_after_s,
)


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert retry_after_s(reset_time=100.2, now=100.0) == 1
    assert retry_after_s(reset_time=100.0, now=100.0) == 1
    assert retry_after_s(reset_time=99.0, now=100.0) == 1
    assert retry_after_s(reset_time=102.01, now=100.0) == 3


def test_rate_limits_are_read_in_the_limits_notation() -> None:
    assert parse_rate_limit("5/second").amount == 5
    assert parse_rate_limit("100 per minute").get_expiry() == 60


@pytest.mark.parametrize("text", ["", "fast", "5", "0/second", "5/second;10/minute"])
def test_a_rate_limit_must_be_one_usable_limit(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate_limit(text)


def test_what_a_call_adds_in_flight() -> None:
    assert requests_added("POST", "/v1/requests", None, None) == 1
    assert requests_added("POST", "/v1/requests", "false", None) == 1
    assert requests_added("POST", "/v1/requests", "true", None) == 0
    assert requests_added("POST", "/v1/bundles", None, {"items": [{}, {}, {}]}) == 3
    assert requests_added("POST", "/v1/bundles", None, {"items": "no"}) == 1
    assert requests_added("GET", "/v1/requests", None, None) == 0
    assert requests_added("POST", "/v1/requests/x/cancel", None, None) == 0
    assert requests_added("DELETE", "/v1/resources/x", None, None) == 0


def test_the_in_flight_cap_counts_what_would_be_added() -> None:
    assert not exceeds_in_flight(in_flight=9, adding=1, cap=10)
    assert exceeds_in_flight(in_flight=10, adding=1, cap=10)
    assert exceeds_in_flight(in_flight=8, adding=3, cap=10)
    # A call that adds nothing is never held back, however full the tenant is.
    assert not exceeds_in_flight(in_flight=50, adding=0, cap=10)
