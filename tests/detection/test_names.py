"""Name rules: mislabeled full names, names in JSON and CSV, organization decoys."""

import pytest


def names(detector, text: str) -> list[tuple[str, str]]:
    return [
        (span.entity_type, text[span.start : span.end])
        for span in detector.detect(text)
        if span.entity_type in ("PERSON", "LOCATION")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Translate to French: Dear Julia Mendes, your card has shipped.",
            [("PERSON", "Julia Mendes")],
        ),
        (
            "please call Marcus Lindqvist tomorrow about the invoice",
            [("PERSON", "Marcus Lindqvist")],
        ),
        (
            "Summarize: Priya Petit reported that the key was leaked.",
            [("PERSON", "Priya Petit")],
        ),
    ],
)
def test_person_cue_names(detector, text, expected):
    assert names(detector, text) == expected


def test_json_values_by_key(detector):
    text = '{"user": {"full_name": "Zofia Mendes", "city": "Toronto"}}'
    assert names(detector, text) == [
        ("PERSON", "Zofia Mendes"),
        ("LOCATION", "Toronto"),
    ]


def test_json_name_key_skips_products(detector):
    text = '{"name": "Billing Service", "version": "2.4.1"}'
    assert names(detector, text) == []


def test_csv_columns_by_header(detector):
    text = "name,city\nLucia Iwasaki,Marseille\n"
    assert names(detector, text) == [
        ("PERSON", "Lucia Iwasaki"),
        ("LOCATION", "Marseille"),
    ]


def test_organization_with_cue_not_person(detector):
    text = "Please call Northwind Traders tomorrow about the invoice."
    assert names(detector, text) == []


def name_spans(detector, text: str) -> list[tuple[int, int, str, str]]:
    return [
        (span.start, span.end, span.entity_type, text[span.start : span.end])
        for span in detector.detect(text)
        if span.entity_type in ("PERSON", "LOCATION")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Email Bob Marley about the invoice",
            [(6, 16, "PERSON", "Bob Marley")],
        ),
        ("Ping Marge Simpson", [(5, 18, "PERSON", "Marge Simpson")]),
        (
            "Email Lisa Simpson at lisa@springfield-fake.edu",
            [(6, 18, "PERSON", "Lisa Simpson")],
        ),
        ("Call Karl Gustafsson", [(5, 20, "PERSON", "Karl Gustafsson")]),
        ("Chunked Tony Stark", [(8, 18, "PERSON", "Tony Stark")]),
        ("Meet Kenji Dubois at noon", [(5, 17, "PERSON", "Kenji Dubois")]),
        ("EMAIL BOB MARLEY ABOUT THE INVOICE", [(6, 16, "PERSON", "BOB MARLEY")]),
        ("Review Bob Marley's notes", [(7, 17, "PERSON", "Bob Marley")]),
    ],
)
def test_leading_verb_not_in_person(detector, text, expected):
    assert name_spans(detector, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Invite Julia Novotny to the call",
            [(7, 20, "PERSON", "Julia Novotny")],
        ),
        (
            "Ping Priya Petit and Marcus Lindqvist",
            [
                (5, 16, "PERSON", "Priya Petit"),
                (21, 37, "PERSON", "Marcus Lindqvist"),
            ],
        ),
    ],
)
def test_verb_before_organization_label_skipped(detector, text, expected):
    assert name_spans(detector, text) == expected


def test_verb_trim_gives_one_person_value(detector):
    values = set()
    for text in ("Email Bob Marley about the invoice", "Bob Marley", "Ping Bob Marley"):
        (span,) = detector.detect(text)
        value = text[span.start : span.end]
        values.add(detector.normalize_value(value, span.entity_type))
    assert values == {"bob marley"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bill Gates said hi", [(0, 10, "PERSON", "Bill Gates")]),
        ("Will Smith called yesterday", [(0, 10, "PERSON", "Will Smith")]),
        ("Vincent van Gogh painted", [(0, 16, "PERSON", "Vincent van Gogh")]),
        ("Long Beach is nice", [(0, 10, "LOCATION", "Long Beach")]),
        ("We flew to New York last week", [(11, 19, "LOCATION", "New York")]),
        ("please call jonas ferreira-ek", [(12, 29, "PERSON", "jonas ferreira-ek")]),
    ],
)
def test_name_starting_with_common_word_kept(detector, text, expected):
    assert name_spans(detector, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Debug:",
        "Debug: something happened",
        "Info: cache miss\nWarning: disk full\nError: boom",
    ],
)
def test_log_label_not_person(detector, text):
    assert name_spans(detector, text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Alice: hi\nBob: hello",
            [(0, 5, "PERSON", "Alice"), (10, 13, "PERSON", "Bob")],
        ),
        ("Harry said hi", [(0, 5, "PERSON", "Harry")]),
        ("Rob, can you check?", [(0, 3, "PERSON", "Rob")]),
        ("Email Bob about the invoice", [(6, 9, "PERSON", "Bob")]),
    ],
)
def test_single_given_name_kept(detector, text, expected):
    assert name_spans(detector, text) == expected
