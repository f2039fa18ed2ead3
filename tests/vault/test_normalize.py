import pytest

from vault.normalize import normalize_value


@pytest.mark.parametrize(
    "value, entity_type, expected",
    [
        ("Alice.Smith@Example.COM ", "EMAIL_ADDRESS", "alice.smith@example.com"),
        ("4111-1111 1111.1111", "CREDIT_CARD", "4111111111111111"),
        ("+1 (555) 010-2030", "PHONE_NUMBER", "15550102030"),
        ("  ALICE   smith ", "PERSON", "alice smith"),
        ("Straße", "PERSON", "strasse"),
        ("de89 3704 0044 0532 0130 00", "IBAN_CODE", "DE89370400440532013000"),
        (" sk-AbC ", "API_KEY", "sk-AbC"),
        ("no digits", "PHONE_NUMBER", "no digits"),
    ],
)
def test_normalize_value(value, entity_type, expected):
    assert normalize_value(value, entity_type) == expected
