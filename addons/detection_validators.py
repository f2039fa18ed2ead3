"""Checksum and format validators that rule files attach to recognizers.

A validator receives the matched text and returns True (valid, the score is raised
to 1.0), False (invalid, the match is dropped) or None (no opinion, the pattern's
score stays). Rule files name validators by the keys of `VALIDATORS`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import string
from collections.abc import Callable

Validator = Callable[[str], bool | None]

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch in string.digits)


def luhn(text: str) -> bool:
    """Check the Luhn (mod 10) checksum of the digits in `text`."""
    digits = _digits(text)
    if len(digits) < 12 or len(set(digits)) == 1:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_mod97(text: str) -> bool:
    """Check an IBAN's country length and its ISO 13616 mod-97 check digits."""
    compact = "".join(ch for ch in text if ch.isalnum()).upper()
    expected_length = _IBAN_LENGTHS.get(compact[:2])
    if expected_length is None or len(compact) != expected_length:
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


def us_ssn(text: str) -> bool:
    """Check the SSA rules for area, group and serial numbers of a US SSN.

    Area 000, 666 and 900-999, group 00 and serial 0000 are never issued. Numbers in
    the 900-999 area are still accepted, because ITINs use that area and are just as
    sensitive. Only area 000 or 666, the zero blocks and repeated digits fail.
    """
    digits = _digits(text)
    if len(digits) != 9 or len(set(digits)) == 1:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or group == "00" or serial == "0000":
        return False
    return True


def ip_address(text: str) -> bool:
    """Check that `text` (optionally with a /prefix or %zone) is an IP address."""
    address = text.split("/", 1)[0].split("%", 1)[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def jwt(text: str) -> bool:
    """Check that the first segment of a JWT decodes to a JSON header with "alg"."""
    header = text.split(".", 1)[0]
    padded = header + "=" * (-len(header) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def not_placeholder(text: str) -> bool | None:
    """Reject values that are obviously placeholders (xxxx, ****, <...>, ${...})."""
    stripped = text.strip("\"'")
    if not stripped:
        return False
    if stripped.startswith(("<", "${", "{{", "%(")):
        return False
    if len(set(stripped.lower())) <= 2:
        return False
    lowered = stripped.lower()
    if lowered in _PLACEHOLDER_WORDS:
        return False
    # A constant or attribute name is a reference to the secret, not the secret:
    # OPENAI_API_KEY, settings.SECRET_KEY, self.token.
    if _IDENTIFIER_REFERENCE.fullmatch(stripped):
        return False
    return None


_IDENTIFIER_REFERENCE = re.compile(
    r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"
)


_PLACEHOLDER_WORDS = frozenset(
    {
        "password", "secret", "token", "none", "null", "true", "false",
        "redacted", "example", "your_password", "yourpassword", "placeholder",
        "os.environ", "getenv", "env",
    }
)  # fmt: skip


VALIDATORS: dict[str, Validator] = {
    "luhn": luhn,
    "iban_mod97": iban_mod97,
    "us_ssn": us_ssn,
    "ip_address": ip_address,
    "jwt": jwt,
    "not_placeholder": not_placeholder,
}
