"""LFDI, SFDI and PIN (pure): the standard's worked example and properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtx_ray.ieee2030_5.identity import (
    DeviceIdentity,
    check_digit,
    has_valid_check_digit,
    is_valid_pin,
    is_valid_sfdi,
    lfdi_from_fingerprint,
    normalise_lfdi,
    sfdi_from_fingerprint,
    sfdi_from_lfdi,
)

WORKED_FP = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5349E2AD745672ED145EE213A"


def test_worked_example_from_the_standard():
    fp = bytes.fromhex(WORKED_FP)
    assert lfdi_from_fingerprint(fp) == "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
    assert sfdi_from_fingerprint(fp) == 167261211391
    assert sfdi_from_lfdi("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5") == 167261211391


def test_pin_and_check_digit():
    assert check_digit(11111) == 5 and is_valid_pin(111115)
    assert not is_valid_pin(111116)
    assert not is_valid_pin(5)
    assert check_digit(0) == 0 and check_digit(19) == 0 and check_digit(1) == 9


def test_short_sfdi_has_no_padding():
    # First 36 bits = 0x000000001 → "1" + check digit 9 = 19: two digits, not twelve.
    fp = bytes.fromhex("000000001" + "F" * 55)
    assert sfdi_from_fingerprint(fp) == 19
    assert is_valid_sfdi(19)


def test_lfdi_leniency_and_strictness():
    lfdi = "00AB" + "1" * 36
    assert normalise_lfdi("ab" + "1" * 36) == lfdi
    assert normalise_lfdi(f"  {lfdi.lower()} ") == lfdi
    for bad in ("", "G" * 40, "1" * 41, "0x12", "-1", "1_2", "12 34"):
        with pytest.raises(ValueError):
            normalise_lfdi(bad)


@given(st.binary(min_size=1, max_size=600))
def test_identity_properties(der: bytes):
    fp = hashlib.sha256(der).digest()
    ident = DeviceIdentity.from_certificate(der)
    assert ident.lfdi == fp[:20].hex().upper()
    digits = str(ident.sfdi)
    assert sum(int(d) for d in digits) % 10 == 0
    assert ident.sfdi // 10 == int.from_bytes(fp[:5], "big") >> 4
    assert has_valid_check_digit(ident.sfdi) and len(digits) <= 12
