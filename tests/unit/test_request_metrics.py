"""Route names of the REST API's request metric: few and fixed, never a raw meter id."""

import pytest

from gtx_ray.serve.request_metrics import route_of, status_class


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/api/readings", "readings"),
        ("/api/meters", "meters"),
        ("/api/meters/AMI_METER_UTCC_001/reading", "meter_reading"),
        ("/api/meters/AMI_METER_SIM_099999/readings", "meter_history"),
        ("/api/meters/x/y/reading", "meter_reading"),
        ("/api/campus/summary", "campus_summary"),
        ("/api/ieee2030_5/status", "ieee2030_5"),
        ("/api/ieee2030_5/admin/devices/3", "ieee2030_5_admin"),
        ("/docs", "docs"),
        ("/AMI_METER_UTCC_001", "other"),
        ("/api/meters/AMI_METER_UTCC_001", "other"),
    ],
)
def test_routes(path, route):
    assert route_of(path) == route


def test_status_classes():
    assert [status_class(s) for s in (200, 204, 404, 422, 503)] == [
        "2xx",
        "2xx",
        "4xx",
        "4xx",
        "5xx",
    ]
