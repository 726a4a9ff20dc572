"""TLS contexts for IEEE 2030.5: TLS 1.2 only, ECDHE-ECDSA-AES128-CCM8, mutual authentication.

OpenSSL 3 supports the CCM8 suite at the default security level but leaves it out of its default
cipher list, so both sides name it explicitly. The server requires a client certificate that
chains to the configured trust anchor (the SERCA) and names that anchor in its
CertificateRequest, so a client holding several certificates can pick the right one; the client's
identity is read afterwards from ``ssl_object.getpeercert(binary_form=True)``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import ssl
from pathlib import Path

from gtx_ray.errors import ConfigError

log = logging.getLogger(__name__)

CIPHER_CCM8 = "ECDHE-ECDSA-AES128-CCM8"
"""TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, the suite 2030.5 mandates."""
CIPHER_GCM = "ECDHE-ECDSA-AES128-GCM-SHA256"
"""An optional second suite for clients whose TLS library lacks CCM8."""


def cipher_string(allow_gcm: bool) -> str:
    """The OpenSSL cipher list: CCM8 first, GCM after it when allowed."""
    return f"{CIPHER_CCM8}:{CIPHER_GCM}" if allow_gcm else CIPHER_CCM8


def _restrict(ctx: ssl.SSLContext, allow_gcm: bool) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher_string(allow_gcm))
    ctx.set_ecdh_curve("prime256v1")
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


def server_context(
    ca_file: str | Path, cert_chain: str | Path, key_file: str | Path, allow_gcm: bool = False
) -> ssl.SSLContext:
    """The 2030.5 server's context: its certificate chain and key, client certificates required
    and verified against ``ca_file``. Raises ConfigError naming a file that cannot be loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _restrict(ctx, allow_gcm)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load(ctx, ca_file, cert_chain, key_file)
    if not advertise_client_cas(ctx, ca_file):
        log.warning("the CertificateRequest will not name the trust anchor %s", ca_file)
    return ctx


def advertise_client_cas(ctx: ssl.SSLContext, ca_file: str | Path) -> bool:
    """Name the certificates of ``ca_file`` as acceptable client CAs in the CertificateRequest.

    Python's ``ssl`` has no call for OpenSSL's ``SSL_CTX_set_client_CA_list`` (without it the
    CertificateRequest names no CA), so this makes the call through ctypes on the libssl that
    ``ssl`` uses, after checking that library's version and that the pointer found in the
    context object is its SSL_CTX (same verify mode and options). Returns False, changing
    nothing, when any check fails.
    """
    try:
        lib = _libssl()
        if lib is None:
            return False
        # PySSLContext starts with PyObject_HEAD and then the SSL_CTX pointer (CPython 3.11).
        ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if not ptr:
            return False
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        peer_required = 0x01 | 0x02  # SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
        if lib.SSL_CTX_get_verify_mode(ptr) != peer_required:
            return False
        if lib.SSL_CTX_get_options(ptr) != int(ctx.options):
            return False
        lib.SSL_load_client_CA_file.argtypes = [ctypes.c_char_p]
        lib.SSL_load_client_CA_file.restype = ctypes.c_void_p
        names = lib.SSL_load_client_CA_file(os.fsencode(ca_file))
        if not names:
            return False
        lib.SSL_CTX_set_client_CA_list.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.SSL_CTX_set_client_CA_list.restype = None
        lib.SSL_CTX_set_client_CA_list(ptr, names)  # the context takes ownership of the list
        return True
    except (OSError, AttributeError, ValueError, TypeError):
        return False


def _libssl() -> ctypes.CDLL | None:
    """The libssl already loaded by Python's ``ssl`` module, if it is a shared library of the
    same version (None otherwise, e.g. a statically linked ``_ssl``)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = set(re.findall(r"(/\S*/libssl\.so[.\d]*)$", maps.read(), re.MULTILINE))
    except OSError:
        return None
    if len(paths) != 1:
        return None
    lib = ctypes.CDLL(paths.pop())
    lib.OpenSSL_version_num.restype = ctypes.c_ulong
    return lib if lib.OpenSSL_version_num() == ssl.OPENSSL_VERSION_NUMBER else None


def client_context(
    ca_file: str | Path,
    cert_chain: str | Path,
    key_file: str | Path,
    allow_gcm: bool = False,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A 2030.5 client's context (a meter): its chain and key, the server verified against
    ``ca_file`` (and its host name when ``check_hostname``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _restrict(ctx, allow_gcm)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load(ctx, ca_file, cert_chain, key_file)
    return ctx


def _load(ctx: ssl.SSLContext, ca_file, cert_chain, key_file) -> None:
    for what, path in (("trust anchor", ca_file), ("certificate", cert_chain), ("key", key_file)):
        if not Path(path).is_file():
            raise ConfigError(f"{path}: {what} file not found; run `python -m gtx_ray certs init`")
    try:
        ctx.load_verify_locations(cafile=str(ca_file))
        ctx.load_cert_chain(str(cert_chain), str(key_file))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"{cert_chain} / {key_file}: cannot load ({exc})") from None
