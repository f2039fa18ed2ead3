"""Per-type normalization of values before the deterministic token lookup.

Two spellings that normalize alike get the same token. The stored value is always
the text first submitted; normalization only decides which values are "the same".

Values of the typed groups below first get `clean_unicode`, the Unicode clean-up
that detection applies to the text it scans. A value written with a zero-width
space, full-width characters or a dash variant then gets the token of its plain
spelling. Changing this clean-up changes the lookup digest of stored values that
contain such characters, so a later copy of such a value gets a new token.
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

# Invisible characters that are dropped: soft hyphen, Mongolian vowel separator,
# zero-width space, non-joiner and joiner, word joiner, invisible operators, BOM.
ZERO_WIDTH = frozenset("\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\ufeff")
# Hyphen and dash variants that NFKC keeps, all mapped to "-".
DASHES = {
    ch: "-"
    for ch in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e3a\u2e3b\ufe58\ufe63"
}


def clean_unicode(value: str) -> str:
    """Remove zero-width characters, apply NFKC and map dash variants to "-"."""
    visible = "".join(char for char in value if char not in ZERO_WIDTH)
    normalized = unicodedata.normalize("NFKC", visible)
    return "".join(
        DASHES.get(char, char) for char in normalized if char not in ZERO_WIDTH
    )


def normalize_value(value: str, entity_type: str) -> str:
    """Return the form of `value` that decides token identity for `entity_type`.

    Email addresses are lower-cased. Cards, phone numbers and similar numbers keep
    their digits only. Names are case-folded with runs of blanks collapsed. IBANs
    lose their spaces and are upper-cased. These four groups get `clean_unicode`
    first. Other types are only stripped, so that secrets that differ in case or in
    any character stay different and each restores to its own text.
    """
    stripped = value.strip()
    if entity_type in EMAIL_TYPES:
        return clean_unicode(stripped).strip().lower()
    if entity_type in DIGIT_TYPES:
        digits = "".join(
            char for char in clean_unicode(stripped) if char in "0123456789"
        )
        # A value without digits is not a number; keep it whole so that it does not
        # collide with every other digitless value of the type.
        return digits or stripped
    if entity_type in NAME_TYPES:
        return " ".join(clean_unicode(stripped).casefold().split())
    if entity_type in COMPACT_TYPES:
        return "".join(clean_unicode(stripped).split()).upper()
    return stripped
