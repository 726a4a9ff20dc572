"""Pure pieces of the REST API: time parameters, the loopback check, ETag matching, origins."""

import pytest
from starlette.exceptions import HTTPException

from gtx_ray.serve.app import _etag_matches, is_loopback, parse_time
from gtx_ray.serve.origins import OriginPolicy, is_protected, normalise_origin


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


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("http://Dash.Example:8080", "http://dash.example:8080"),
        ("https://x.org:443/", "https://x.org"),
        ("http://[::1]:4040", "http://[::1]:4040"),
        (" http://127.0.0.1:80 ", "http://127.0.0.1"),
    ],
)
def test_origins_are_normalised_as_browsers_send_them(text, origin):
    assert normalise_origin(text) == origin


@pytest.mark.parametrize(
    "text", ["dash.example", "ftp://x.org", "http://x.org/path", "http://x.org?q=1", "http://a:x"]
)
def test_not_origins(text):
    with pytest.raises(ValueError, match=r"origin|port"):
        normalise_origin(text)


@pytest.mark.parametrize(
    ("method", "path", "protected"),
    [
        ("GET", "/api/readings", False),
        ("HEAD", "/api/simulation", False),
        ("POST", "/api/simulation", True),
        ("DELETE", "/api/readings", True),
        ("GET", "/api/ieee2030_5/admin", True),
        ("GET", "/api/ieee2030_5/admin/devices", True),
        ("GET", "/api/ieee2030_5/administrator", False),
        ("GET", "/api/ieee2030_5/status", False),
    ],
)
def test_protected_routes(method, path, protected):
    assert is_protected(method, path) is protected


POLICY = OriginPolicy.build("127.0.0.1", ["http://dash.example:8080"])


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),  # curl, scripts
        ({"sec-fetch-site": "none"}, False),  # typed into the address bar
        ({"sec-fetch-site": "same-origin"}, False),
        ({"sec-fetch-site": "same-site"}, True),
        ({"sec-fetch-site": "cross-site"}, True),
        ({"origin": "http://127.0.0.1:4040", "host": "127.0.0.1:4040"}, False),
        ({"origin": "http://localhost:4040", "host": "localhost:4040"}, False),
        ({"origin": "http://[::1]:4040", "host": "[::1]:4040"}, False),
        ({"origin": "http://127.0.0.1:8080", "host": "127.0.0.1:4040"}, True),
        ({"origin": "http://evil.example", "host": "127.0.0.1:4040"}, True),
        ({"origin": "null", "host": "127.0.0.1:4040"}, True),
        ({"origin": "http://rebind.example:4040", "host": "rebind.example:4040"}, True),
        ({"origin": "http://dash.example:8080", "sec-fetch-site": "cross-site"}, False),
        (
            {
                "origin": "http://127.0.0.1:4040",
                "host": "127.0.0.1:4040",
                "sec-fetch-site": "cross-site",
            },
            True,
        ),
    ],
)
def test_origin_refusals(headers, refused):
    assert (POLICY.refusal(headers) is not None) is refused
