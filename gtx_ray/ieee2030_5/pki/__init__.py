"""Certificates for IEEE 2030.5 mutual TLS: a SERCA → MICA chain, a server and one per meter.

``certificates`` builds and checks certificates (pure), ``layout`` says where they live in a
certificates directory, ``authority`` creates and issues them there, ``cli`` is
``python -m gtx_ray certs``. The names below are the package's public surface, re-exported so
callers write ``pki.init_certs`` without knowing which module holds it.
"""

from gtx_ray.ieee2030_5.pki.authority import (
    InitReport,
    IssuedCert,
    init_certs,
    issue_device_cert,
    write_file,
)
from gtx_ray.ieee2030_5.pki.certificates import (
    DEFAULT_SERVER_NAMES,
    NOT_AFTER,
    NOT_BEFORE,
    certificate_der,
    device_certificate_problem,
    hardware_module_name,
    hardware_serial,
    identity_of,
    load_first_certificate,
    make_device_cert,
    make_mica,
    make_serca,
    make_server_cert,
    new_key,
)
from gtx_ray.ieee2030_5.pki.layout import (
    CertsLayout,
    DeviceCredentials,
    check_issue_name,
    device_credentials,
    load_devices_index,
)

__all__ = [
    "DEFAULT_SERVER_NAMES",
    "NOT_AFTER",
    "NOT_BEFORE",
    "CertsLayout",
    "DeviceCredentials",
    "InitReport",
    "IssuedCert",
    "certificate_der",
    "check_issue_name",
    "device_certificate_problem",
    "device_credentials",
    "hardware_module_name",
    "hardware_serial",
    "identity_of",
    "init_certs",
    "issue_device_cert",
    "load_devices_index",
    "load_first_certificate",
    "make_device_cert",
    "make_mica",
    "make_serca",
    "make_server_cert",
    "new_key",
    "write_file",
]
