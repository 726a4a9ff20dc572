"""`certs init` / `certs show` and the certificates they make, checked with OpenSSL itself."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gtx_ray.ieee2030_5 import pki
from gtx_ray.ieee2030_5.identity import check_digit
from gtx_ray.ieee2030_5.pki.cli import certs_main
from gtx_ray.ieee2030_5.tls import client_context
from tests.ieee2030_5.conftest import CAMPUS_CONFIG, REPO
from tests.ieee2030_5.helpers import Sep2Client


def openssl_identity(pem_path) -> tuple[str, int]:
    """LFDI and SFDI computed from `openssl x509 -fingerprint -sha256` (independent of pki)."""
    out = subprocess.run(
        ["openssl", "x509", "-in", str(pem_path), "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fp = re.search(r"=([0-9A-F:]+)", out).group(1).replace(":", "")
    assert len(fp) == 64
    prefix = int(fp[:9], 16)
    digits = str(prefix)
    check = (10 - sum(map(int, digits)) % 10) % 10
    return fp[:40], int(digits + str(check))


def test_init_makes_the_campus_certificates(certs_dir, meter_ids, capsys):
    layout = pki.CertsLayout(certs_dir)
    index = json.loads(layout.devices_index.read_text())
    assert sorted(index) == sorted(meter_ids)
    for key in [layout.serca_key, layout.mica_key, layout.server_key] + [
        layout.device_key(m) for m in meter_ids
    ]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for meter_id in meter_ids:
        cert_path = layout.device_cert(meter_id)
        lfdi, sfdi = openssl_identity(cert_path)
        assert (index[meter_id]["lfdi"], index[meter_id]["sfdi"]) == (lfdi, sfdi)
        assert certs_main(["show", str(cert_path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert (info["lfdi"], info["sfdi"], info["hardware_serial"]) == (lfdi, sfdi, meter_id)
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(layout.serca_cert),
            "-untrusted",
            str(layout.mica_cert),
            *[str(layout.device_cert(m)) for m in meter_ids],
            str(layout.server_cert),
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_device_certificate_profile(certs_dir):
    layout = pki.CertsLayout(certs_dir)
    chain = x509.load_pem_x509_certificates(layout.device_cert("AMI_METER_UTCC_001").read_bytes())
    cert, mica = chain
    assert mica.subject == cert.issuer
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.not_valid_after_utc.isoformat() == "9999-12-31T23:59:59+00:00"
    assert len(cert.subject) == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_agreement
    assert not ku.value.key_cert_sign and not ku.value.key_encipherment
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    oids = {p.policy_identifier.dotted_string for p in policies}
    assert oids and all(o.startswith("1.3.6.1.4.1.40732.") for o in oids)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    (hmn,) = san.value.get_values_for_type(x509.OtherName)
    assert hmn.type_id.dotted_string == "1.3.6.1.5.5.7.8.4"
    assert pki.hardware_serial(cert) == "AMI_METER_UTCC_001"
    mica_bc = mica.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert mica_bc.ca and mica_bc.path_length == 0
    # The server certificate names localhost and 127.0.0.1.
    server = x509.load_pem_x509_certificates(layout.server_cert.read_bytes())[0]
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_short_sfdi_matches_openssl(tmp_path):
    """Search for a certificate whose SFDI has fewer than 12 digits (about 1 in 7 do)."""
    serca, serca_key = pki.make_serca()
    mica, mica_key = pki.make_mica(serca, serca_key)
    for i in range(500):
        cert = pki.make_device_cert(mica, mica_key, pki.new_key(), f"short-{i}")
        ident = pki.identity_of(cert)
        if ident.sfdi < 10**11:
            break
    else:
        pytest.fail("no certificate with a short SFDI in 500 tries")
    path = tmp_path / "short.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert openssl_identity(path) == (ident.lfdi, ident.sfdi)
    assert len(str(ident.sfdi)) < 12
    assert ident.sfdi % 10 == check_digit(ident.sfdi // 10)


def test_init_keeps_files_unless_forced(tmp_path, capsys):
    d = tmp_path / "c"
    args = ["init", "--dir", str(d), "--config-file", str(CAMPUS_CONFIG), "--meters", "3"]
    assert certs_main(args) == 0
    layout = pki.CertsLayout(d)
    first = {p: p.read_bytes() for p in d.rglob("*.pem")}
    assert len(first) == 3 + 3  # serca, mica, server + 3 devices
    assert certs_main([*args, "--server-name", "gtx.example"]) == 0
    after = {p: p.read_bytes() for p in d.rglob("*.pem")}
    changed = {p for p in first if first[p] != after[p]}
    assert changed == {layout.server_cert}  # only the server, for its new name
    assert "kept" in capsys.readouterr().out
    assert certs_main([*args, "--force"]) == 0
    forced = {p: p.read_bytes() for p in d.rglob("*.pem")}
    assert all(forced[p] != first[p] for p in first)
    # A device certificate from another chain is not silently kept.
    other = tmp_path / "other"
    assert (
        certs_main(
            ["init", "--dir", str(other), "--config-file", str(CAMPUS_CONFIG), "--meters", "1"]
        )
        == 0
    )
    meter = "AMI_METER_SIM_000001"
    layout.device_cert(meter).write_bytes(pki.CertsLayout(other).device_cert(meter).read_bytes())
    assert certs_main(args) == 2
    assert "not issued by the CA" in capsys.readouterr().err


def test_show_pem_der_and_chain(certs_dir, tmp_path, capsys):
    layout = pki.CertsLayout(certs_dir)
    chain_path = layout.device_cert("AMI_METER_UTCC_002")
    cert = x509.load_pem_x509_certificates(chain_path.read_bytes())[0]
    der_path = tmp_path / "device.der"
    der_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    lfdi, sfdi = openssl_identity(chain_path)
    for path in (chain_path, der_path):
        assert certs_main(["show", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"LFDI: {lfdi}" in out and f"SFDI: {sfdi}" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([], "required"),
        (["bogus"], "invalid choice"),
        (["init", "--meters", "zero"], "invalid int"),
        (["init", "--meters", "0"], "at least 1"),
        (["init", "--config-file", "/no/such/file.json"], "not found"),
        (["show"], "required"),
        (["show", "/no/such/cert.pem"], "no such file"),
        (["show", "pyproject.toml"], "neither a PEM nor a DER"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    if argv[:1] == ["init"]:
        argv = [*argv, "--dir", str(tmp_path / "x")]
    assert certs_main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
    assert captured.out == ""


def test_cli_help_exits_0(capsys):
    assert certs_main(["init", "--help"]) == 0
    assert "--server-name" in capsys.readouterr().out


def test_only_device_certificates_pass_the_client_check(certs_dir, meter_ids):
    layout = pki.CertsLayout(certs_dir)
    serca = pki.load_first_certificate(layout.serca_cert.read_bytes())
    for meter_id in meter_ids:
        cert = pki.load_first_certificate(layout.device_cert(meter_id).read_bytes())
        assert pki.device_certificate_problem(cert, [serca.subject]) is None, meter_id
    server = pki.load_first_certificate(layout.server_cert.read_bytes())
    assert "server certificate" in pki.device_certificate_problem(server, [serca.subject])
    for ca in (serca, pki.load_first_certificate(layout.mica_cert.read_bytes())):
        assert "CA certificate" in pki.device_certificate_problem(ca, [serca.subject])


def _issue(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gtx_ray", "certs", "issue", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_issue_makes_a_device_certificate_for_an_outside_tool(
    certs_dir, server, sep_schema, tmp_path
):
    done = _issue("harness-1", "--dir", str(certs_dir))
    assert done.returncode == 0, done.stderr
    layout = pki.CertsLayout(certs_dir)
    chain_path, key_path = layout.issued_cert("harness-1"), layout.issued_key("harness-1")
    assert chain_path.parent == certs_dir / "issued"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates(chain_path.read_bytes())
    names = [c.subject.rfc4514_string() for c in chain]
    assert names[1:] == ["CN=gtx_ray MICA (test)", "CN=gtx_ray SERCA (test)"]
    lfdi, sfdi = openssl_identity(chain_path)
    assert f"LFDI: {lfdi}" in done.stdout and f"SFDI: {sfdi}" in done.stdout
    serca = pki.load_first_certificate(layout.serca_cert.read_bytes())
    assert pki.device_certificate_problem(chain[0], [serca.subject]) is None
    # The issued certificate is a client the server accepts, as a device of its own.
    ctx = client_context(layout.serca_cert, chain_path, key_path)
    c = Sep2Client(server.port, certs_dir, "AMI_METER_UTCC_024", sep_schema, context=ctx)
    try:
        assert c.get("/dcap").status == 200
        c.identity = pki.identity_of(chain[0])
        edev = c.get(c.register())
        assert (edev.text("lFDI"), edev.text("sFDI")) == (lfdi, str(sfdi))
    finally:
        c.close()
    # Issuing the same name again needs --force, which makes a new key and certificate.
    again = _issue("harness-1", "--dir", str(certs_dir))
    assert again.returncode == 2 and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    assert openssl_identity(chain_path) == (lfdi, sfdi)
    forced = _issue("harness-1", "--dir", str(certs_dir), "--force")
    assert forced.returncode == 0, forced.stderr
    assert openssl_identity(chain_path)[0] != lfdi


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 65, "sp ace", "ä"])
def test_issue_refuses_a_bad_name(name, certs_dir):
    done = _issue(name, "--dir", str(certs_dir))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "name" in done.stderr
    assert not (certs_dir.parent / "escape.pem").exists()


def test_issue_needs_a_certificate_authority(tmp_path):
    done = _issue("tool", "--dir", str(tmp_path / "empty"))
    assert done.returncode == 2 and "certs init" in done.stderr
