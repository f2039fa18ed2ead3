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
