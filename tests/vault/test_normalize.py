import pytest

from vault.normalize import clean_unicode, normalize_value


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


@pytest.mark.parametrize(
    "plain, disguised, entity_type",
    [
        ("alice@example.test", "ali\u200bce@example.test", "EMAIL_ADDRESS"),
        ("alice@example.test", "\ufeffalice\uff20example.test", "EMAIL_ADDRESS"),
        ("alice@example.test", "ALICE@EXAMPLE.TEST\u00a0", "EMAIL_ADDRESS"),
        (
            "4111-1111-1111-1111",
            (
                "\uff14\uff11\uff11\uff11\u2212\uff11\uff11\uff11\uff11\u2013"
                "\uff11\uff11\uff11\uff11\u2010\uff11\uff11\uff11\uff11"
            ),
            "CREDIT_CARD",
        ),
        ("+1 555 010 2030", "+1\u00a0555\u200b\u2011010\u20122030", "PHONE_NUMBER"),
        ("Jonas Ferreira-Ek", "Jo\u200bnas Ferreira\u2010Ek", "PERSON"),
        ("Jonas Ferreira-Ek", "\uff2a\uff4f\uff4e\uff41\uff53 Ferreira-Ek", "PERSON"),
        ("Lisbon", "Lis\u00adbon", "LOCATION"),
        (
            "DE89 3704 0044 0532 0130 00",
            "DE89\u200b3704 0044 0532 0130 00",
            "IBAN_CODE",
        ),
    ],
)
def test_normalize_value_unicode_spellings_equal(plain, disguised, entity_type):
    assert normalize_value(disguised, entity_type) == normalize_value(
        plain, entity_type
    )


@pytest.mark.parametrize(
    "value, entity_type, expected",
    [
        ("ali\u200bce@example.test", "EMAIL_ADDRESS", "alice@example.test"),
        ("\uff14\uff11\uff11\uff11\u2212\uff11\uff11", "CREDIT_CARD", "411111"),
        ("Ali\u200bce  Smith", "PERSON", "alice smith"),
    ],
)
def test_normalize_value_unicode_clean_up(value, entity_type, expected):
    assert normalize_value(value, entity_type) == expected


def test_normalize_value_secret_keeps_characters():
    assert normalize_value("pass\u200bword\uff11", "SECRET") == "pass\u200bword\uff11"


def test_clean_unicode_folds_dashes():
    assert clean_unicode("a\u2013b\u2212c\ufe63d") == "a-b-c-d"


def test_vault_token_shared_by_zero_width_spelling(vault):
    plain = vault.tokenize("alice@example.test", "EMAIL_ADDRESS", "team")
    disguised = vault.tokenize("ali\u200bce@example.test", "EMAIL_ADDRESS", "team")
    assert disguised == plain


def test_vault_keeps_first_submitted_spelling(vault):
    token = vault.tokenize("Jo\u200bnas Ferreira-Ek", "PERSON", "team")
    vault.tokenize("Jonas Ferreira-Ek", "PERSON", "team")
    revealed = vault.reveal(token, "team", actor="test", purpose="check")
    assert revealed == "Jo\u200bnas Ferreira-Ek"
