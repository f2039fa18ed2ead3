import pytest

from vault.tokens import DEFAULT_FORMAT, TokenFormat, damm_check_digit, is_valid_id


def test_format_appends_damm_check_digit():
    assert DEFAULT_FORMAT.format("PERSON", 1) == "[PERSON_13]"
    assert DEFAULT_FORMAT.format("EMAIL_ADDRESS", 1234) == "[EMAIL_ADDRESS_12340]"
    assert damm_check_digit("572") == "4"


@pytest.mark.parametrize("serial", [0, -1, True])
def test_format_rejects_invalid_serial(serial):
    with pytest.raises(ValueError):
        DEFAULT_FORMAT.format("PERSON", serial)


@pytest.mark.parametrize("entity_type", ["person", "1ABC", "", "A-B", "A" * 49])
def test_format_rejects_invalid_entity_type(entity_type):
    with pytest.raises(ValueError):
        DEFAULT_FORMAT.format(entity_type, 1)


def test_parse_round_trips_format():
    for serial in (1, 9, 10, 99, 12345, 10**15):
        token = DEFAULT_FORMAT.format("US_SSN", serial)
        match = DEFAULT_FORMAT.parse(token)
        assert match is not None
        assert match.valid
        assert match.entity_type == "US_SSN"
        assert match.serial == serial
        assert match.token == token


def test_parse_rejects_surrounding_text():
    assert DEFAULT_FORMAT.parse(" [PERSON_13]") is None
    assert DEFAULT_FORMAT.parse("[PERSON_13]x") is None
    assert DEFAULT_FORMAT.parse("[person_13]") is None


def test_single_digit_change_fails_check():
    for serial in range(1, 200):
        token_id = str(serial) + damm_check_digit(str(serial))
        for position in range(len(token_id)):
            for digit in "0123456789":
                if digit == token_id[position]:
                    continue
                mangled = token_id[:position] + digit + token_id[position + 1 :]
                assert not is_valid_id(mangled), mangled


def test_adjacent_swap_fails_check():
    for serial in range(10, 500):
        token_id = str(serial) + damm_check_digit(str(serial))
        for position in range(len(token_id) - 1):
            swapped = (
                token_id[:position] + token_id[position + 1] + token_id[position]
                + token_id[position + 2 :]
            )
            if swapped != token_id:
                assert not is_valid_id(swapped), swapped


def test_mangled_token_parses_invalid():
    match = DEFAULT_FORMAT.parse("[PERSON_14]")
    assert match is not None
    assert match.valid is False
    assert match.serial is None


def test_find_strict_returns_canonical_tokens_only():
    text = "Hi [PERSON_13], mail [EMAIL_ADDRESS_13] or [person_13] [PERSON_14]"
    matches = DEFAULT_FORMAT.find(text)
    assert [m.token for m in matches] == ["[PERSON_13]", "[EMAIL_ADDRESS_13]", "[PERSON_14]"]
    assert [m.valid for m in matches] == [True, True, False]
    assert text[matches[0].start : matches[0].end] == "[PERSON_13]"


@pytest.mark.parametrize(
    "text, found",
    [
        ("see [person_13] now", "[person_13]"),
        ("see [ PERSON _ 13 ] now", "[ PERSON _ 13 ]"),
        ("see PERSON_13] now", "PERSON_13]"),
        ("see [PERSON_13 now", "[PERSON_13"),
        ("see [Email_Address_13].", "[Email_Address_13]"),
    ],
)
def test_find_lenient_tolerates_model_changes(text, found):
    matches = DEFAULT_FORMAT.find(text, lenient=True)
    assert len(matches) == 1
    assert text[matches[0].start : matches[0].end] == found
    assert matches[0].valid
    assert matches[0].token in ("[PERSON_13]", "[EMAIL_ADDRESS_13]")


@pytest.mark.parametrize(
    "text",
    ["PERSON_13 alone", "9PERSON_13]", "[PERSON_135", "[PERSON_13a]", "PERSON 13"],
)
def test_find_lenient_skips_ambiguous_text(text):
    matches = [m for m in DEFAULT_FORMAT.find(text, lenient=True) if m.valid]
    assert matches == []


def test_find_lenient_marks_bad_check_digit_invalid():
    matches = DEFAULT_FORMAT.find("[person_14]", lenient=True)
    assert len(matches) == 1
    assert matches[0].valid is False


def test_find_never_overlaps():
    text = "[PERSON_13][PERSON_21]]PERSON_13]"
    for lenient in (False, True):
        matches = DEFAULT_FORMAT.find(text, lenient=lenient)
        ends = [m.end for m in matches]
        starts = [m.start for m in matches]
        assert all(start >= end for start, end in zip(starts[1:], ends[:-1]))
    assert len(DEFAULT_FORMAT.find(text, lenient=True)) == 3


@pytest.mark.parametrize(
    "text, held",
    [
        ("Hi [PERS", 5),
        ("Hi [", 1),
        ("Hi [PERSON_1", 9),
        ("Hi [PERSON_13", 10),
        ("Hi [PERSON_13]", 0),
        ("Hi there", 0),
        ("Hi [person _ 1", 11),
        ("Hi PERSON_1", 8),
        ("", 0),
    ],
)
def test_prefix_holdback(text, held):
    assert DEFAULT_FORMAT.prefix_holdback(text) == held


def test_prefix_holdback_strict_ignores_lowercase():
    assert DEFAULT_FORMAT.prefix_holdback("Hi [pers", lenient=False) == 0
    assert DEFAULT_FORMAT.prefix_holdback("Hi [PERS", lenient=False) == 5


def test_custom_template_with_regex_metacharacters():
    token_format = TokenFormat("(*{entity_type}|{id}*)")
    token = token_format.format("PERSON", 7)
    assert token == "(*PERSON|" + "7" + damm_check_digit("7") + "*)"
    assert token_format.parse(token).serial == 7
    assert [m.token for m in token_format.find(f"a {token} b [PERSON_13]")] == [token]
    assert token_format.prefix_holdback("a (*PER") == 5


@pytest.mark.parametrize(
    "template",
    ["{entity_type}_{id}]", "[{entity_type}{id}]", "[{id}_{entity_type}]",
     "[{entity_type}_{id}", "[{entity_type}_{id}_{id}]", "[X{entity_type}_{id}]"],
)
def test_template_rejects_unsearchable_forms(template):
    with pytest.raises(ValueError):
        TokenFormat(template)


def test_token_in_text_cannot_inject_pattern():
    token_format = TokenFormat("[{entity_type}_{id}]")
    assert token_format.find("[.*_13] [PERSON_.3]") == []
