"""Pure pieces of the REST API: time parameters, the loopback check, ETag matching."""

import pytest
from starlette.exceptions import HTTPException

from gtx_ray.serve.app import _etag_matches, is_loopback, parse_time


@pytest.mark.parametrize(
    ("text", "epoch_s"),
    [
        ("1735664400", 1_735_664_400),
        ("2025-01-01T00:00:00Z", 1_735_689_600),
        ("2025-01-01T07:00:00+07:00", 1_735_689_600),
        ("2025-01-01", 1_735_689_600),
        (" 0 ", 0),
    ],
)
def test_times_that_parse(text, epoch_s):
    assert parse_time("start", text) == epoch_s


@pytest.mark.parametrize(
    "text", ["yesterday", "²", "١٢٣", "-5", "1000000000000000", "0001-01-01", "", "12:00"]
)
def test_times_that_are_422(text):
    with pytest.raises(HTTPException) as caught:
        parse_time("start", text)
    assert caught.value.status_code == 422 and "start=" in caught.value.detail


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("::ffff:10.0.0.1", False),
        ("10.0.0.1", False),
        ("192.0.2.2", False),
        ("example.org", False),
        (None, False),
    ],
)
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (b'"a-1"', True),
        (b'W/"a-1"', True),
        (b'"x", "a-1"', True),
        (b"*", True),
        (b'"a-2"', False),
        (b'"a-10"', False),
        (b"", False),
        (None, False),
    ],
)
def test_etag_matching(header, matches):
    assert _etag_matches(header, b'"a-1"') is matches
