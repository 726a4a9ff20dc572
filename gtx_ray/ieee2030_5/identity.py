"""Device identity from a certificate (IEEE 2030.5-2018 §6.3.4): fingerprint, LFDI, SFDI, PIN.

- fingerprint: SHA-256 of the whole DER-encoded certificate (32 bytes);
- LFDI: the first 160 bits of the fingerprint, written as 40 upper-case hex digits;
- SFDI: the first 36 bits of the fingerprint as a decimal number, followed by one check digit
  chosen so that the sum of all decimal digits is a multiple of 10 (sum of digits, not Luhn).
  It has at most 12 digits and may have fewer (no zero padding).
- PIN: a decimal number whose last digit is the same sum-of-digits check digit.

Worked example from the standard: fingerprint ``3E4F45AB…213A`` → LFDI
``3E4F45AB31EDFE5B67E343E5E4562E31984E23E5`` → SFDI ``167261211391``.

Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

LFDI_HEX_DIGITS = 40
"""An LFDI is 160 bits: 40 hex digits."""
SFDI_MAX = 68_719_476_735 * 10 + 9
"""An upper bound on an SFDI: 36 bits of ones (68719476735) followed by a digit."""
_HEX = frozenset(string.hexdigits)


def fingerprint(cert_der: bytes) -> bytes:
    """SHA-256 of a DER-encoded certificate (32 bytes)."""
    if not cert_der:
        raise ValueError("empty certificate")
    return hashlib.sha256(cert_der).digest()


def check_digit(number: int) -> int:
    """The digit that makes the digit sum of ``number`` followed by it a multiple of 10."""
    if number < 0:
        raise ValueError(f"check digit of a negative number: {number}")
    return (10 - sum(int(d) for d in str(number)) % 10) % 10


def has_valid_check_digit(number: int) -> bool:
    """True when the last decimal digit of ``number`` is the check digit of the others."""
    if number < 10:
        return False
    return check_digit(number // 10) == number % 10


def lfdi_from_fingerprint(fp: bytes) -> str:
    """The LFDI (40 upper-case hex digits) of a 32-byte fingerprint."""
    if len(fp) != 32:
        raise ValueError(f"a SHA-256 fingerprint is 32 bytes, got {len(fp)}")
    return fp[:20].hex().upper()


def sfdi_from_lfdi(lfdi: str) -> int:
    """The SFDI of an LFDI (the first 36 bits are the first 9 hex digits), with its check digit."""
    lfdi = normalise_lfdi(lfdi)
    prefix = int(lfdi[:9], 16)
    return prefix * 10 + check_digit(prefix)


def sfdi_from_fingerprint(fp: bytes) -> int:
    """The SFDI (decimal, up to 12 digits) of a 32-byte fingerprint."""
    return sfdi_from_lfdi(lfdi_from_fingerprint(fp))


def normalise_lfdi(text: str) -> str:
    """An LFDI as 40 upper-case hex digits.

    Lenient where clients differ: accepts lower case and surrounding whitespace, and restores
    leading zeros that a client dropped (``hexBinary`` written as a number). Raises ValueError for
    anything that is not hex or is longer than 160 bits.
    """
    digits = text.strip()
    if not digits or len(digits) > LFDI_HEX_DIGITS:
        raise ValueError(f"an LFDI is 1 to 40 hex digits, got {len(digits)} characters")
    if not all(c in _HEX for c in digits):
        raise ValueError(f"an LFDI is hex digits, got {digits[:48]!r}")
    value = int(digits, 16)
    return f"{value:040X}"


def is_valid_sfdi(sfdi: int) -> bool:
    """True for a number that can be an SFDI: 0 < sfdi ≤ 687194767359 with a valid check digit."""
    return 0 < sfdi <= SFDI_MAX and has_valid_check_digit(sfdi)


def is_valid_pin(pin: int) -> bool:
    """True for a registration PIN: at most 6 digits, last digit the sum-of-digits check digit."""
    return 10 <= pin <= 999_999 and has_valid_check_digit(pin)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who a TLS peer is, derived from its certificate alone.

    lfdi: 40 upper-case hex digits; sfdi: decimal number (≤ 12 digits).
    """

    lfdi: str
    sfdi: int

    @staticmethod
    def from_certificate(cert_der: bytes) -> DeviceIdentity:
        """Identity of a DER-encoded certificate."""
        fp = fingerprint(cert_der)
        return DeviceIdentity(lfdi_from_fingerprint(fp), sfdi_from_fingerprint(fp))
