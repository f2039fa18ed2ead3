"""Per-type normalization of values before the deterministic token lookup.

Two spellings that normalize alike get the same token. The stored value is always
the text first submitted; normalization only decides which values are "the same".
"""

import unicodedata

DIGIT_TYPES = frozenset(
    {
        "CREDIT_CARD",
        "PHONE_NUMBER",
        "US_SSN",
        "US_ITIN",
        "US_BANK_NUMBER",
        "UK_NHS",
    }
)
NAME_TYPES = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "NRP"})
EMAIL_TYPES = frozenset({"EMAIL_ADDRESS"})
COMPACT_TYPES = frozenset({"IBAN_CODE"})


def normalize_value(value: str, entity_type: str) -> str:
    """Return the form of `value` that decides token identity for `entity_type`.

    Email addresses are lower-cased. Cards, phone numbers and similar numbers keep
    their digits only. Names are case-folded with runs of blanks collapsed. IBANs
    lose their spaces and are upper-cased. Other types are only stripped, so that
    secrets that differ in case stay different.
    """
    stripped = value.strip()
    if entity_type in EMAIL_TYPES:
        return unicodedata.normalize("NFKC", stripped).lower()
    if entity_type in DIGIT_TYPES:
        digits = "".join(
            char for char in unicodedata.normalize("NFKC", stripped) if char in "0123456789"
        )
        # A value without digits is not a number; keep it whole so that it does not
        # collide with every other digitless value of the type.
        return digits or stripped
    if entity_type in NAME_TYPES:
        return " ".join(unicodedata.normalize("NFKC", stripped).casefold().split())
    if entity_type in COMPACT_TYPES:
        return "".join(unicodedata.normalize("NFKC", stripped).split()).upper()
    return stripped
