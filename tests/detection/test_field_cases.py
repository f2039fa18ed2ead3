"""Field cases: exact spans for inputs that broke other PII detectors."""

import pytest

from addons.detection import Detector, Span


def spans_of(detector: Detector, text: str) -> list[tuple[int, int, str, str]]:
    return [
        (span.start, span.end, span.entity_type, text[span.start : span.end])
        for span in detector.detect(text)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "please call jonas ferreira-ek",
        "PLEASE CALL JONAS FERREIRA-EK",
        "Please call Jonas Ferreira-Ek",
    ],
)
def test_casing_name_is_one_person_span(detector, text):
    assert spans_of(detector, text) == [(12, 29, "PERSON", text[12:29])]


def test_casing_name_normalizes_to_same_value(detector):
    values = {
        detector.normalize_value(name, "PERSON")
        for name in ("jonas ferreira-ek", "JONAS FERREIRA-EK", "Jonas Ferreira-Ek")
    }
    assert values == {"jonas ferreira-ek"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 2221 0000 0000 0009", [(5, 24, "CREDIT_CARD")]),
        ("４１１１−１１１１−１１１１−１１１１", [(0, 19, "CREDIT_CARD")]),
        ("bob＠example.test", [(0, 16, "EMAIL_ADDRESS")]),
        ("ali\u200bce@example.test", [(0, 19, "EMAIL_ADDRESS")]),
        ("mail ali\u200bce@example.test now", [(5, 24, "EMAIL_ADDRESS")]),
    ],
)
def test_unicode_disguise_maps_to_original_span(detector, text, expected):
    found = [(s.start, s.end, s.entity_type) for s in detector.detect(text)]
    assert found == expected


def test_unicode_card_normalizes_to_ascii_digits(detector):
    value = detector.normalize_value(
        "４１１１−１１１１−１１１１−１１１１", "CREDIT_CARD"
    )
    assert value == "4111111111111111"


def test_unicode_email_normalizes_like_plain(detector):
    assert detector.normalize_value("ali\u200bce@Example.test", "EMAIL_ADDRESS") == (
        "alice@example.test"
    )


def test_identifiers_are_not_phone_numbers(detector):
    text = "id 7f3c9a10-1b2c-4d5e-8046-1297901ea002, due 05.10.2024, ts 1747731000"
    types = [span.entity_type for span in detector.detect(text)]
    assert "PHONE_NUMBER" not in types


def test_iban_span_ends_before_reference(detector):
    text = "IBAN DE89 3704 0044 0532 0130 00 REF INVOICE"
    assert spans_of(detector, text) == [
        (5, 32, "IBAN_CODE", "DE89 3704 0044 0532 0130 00")
    ]


def test_ip_addresses_found_and_code_untouched(detector):
    text = "peer 2001:db8:0:0:0:ff00:42:8329, lo ::1, code std::vector<int>"
    assert spans_of(detector, text) == [
        (5, 32, "IP_ADDRESS", "2001:db8:0:0:0:ff00:42:8329"),
        (37, 40, "IP_ADDRESS", "::1"),
    ]


def test_overlap_email_and_name_resolve(detector):
    text = "Dana Reyes - dana.reyes@example.test (Dana's desk)"
    assert spans_of(detector, text) == [
        (0, 10, "PERSON", "Dana Reyes"),
        (13, 36, "EMAIL_ADDRESS", "dana.reyes@example.test"),
        (38, 42, "PERSON", "Dana"),
    ]


def test_spans_never_overlap(detector):
    text = "Dana Reyes - dana.reyes@example.test (Dana's desk)"
    spans = detector.detect(text)
    for first, second in zip(spans, spans[1:]):
        assert first.end <= second.start


def test_long_input_scanned_completely(detector):
    text = "lorem " * 200_000 + "ssn 987-65-4321"
    spans = detector.detect(text)
    assert [(s.start, s.end, s.entity_type) for s in spans] == [
        (1_200_004, 1_200_015, "US_SSN")
    ]


def test_long_input_value_on_chunk_border(detector):
    prefix = "word " * 3999 + "abc"  # 19998 characters, the next value crosses 20000
    text = prefix + " alice.novak@example.test " + "tail " * 100
    start = len(prefix) + 1
    assert [(s.start, s.end, s.entity_type) for s in detector.detect(text)] == [
        (start, start + 24, "EMAIL_ADDRESS")
    ]


def test_long_private_key_across_chunk_border(detector):
    body = "\n".join(["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"] * 40)
    key = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"
    prefix = "text " * 3900
    text = prefix + key + " done"
    assert [(s.start, s.end, s.entity_type) for s in detector.detect(text)] == [
        (len(prefix), len(prefix) + len(key), "SECRET")
    ]


def test_megabyte_prompt_finds_values_at_both_ends(detector):
    filler = "The quarterly report lists revenue by region and product line. " * 16_500
    text = "mail a.b@example.test\n" + filler + "\ncard 4111 1111 1111 1111"
    spans = detector.detect(text)
    assert len(text) > 1_000_000
    assert spans[0] == Span(5, 21, "EMAIL_ADDRESS", spans[0].score)
    assert (spans[-1].entity_type, text[spans[-1].start : spans[-1].end]) == (
        "CREDIT_CARD",
        "4111 1111 1111 1111",
    )


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("020 7946 0958, ext. 12", "020 7946 0958, ext. 12"),
        ("020 7946 0958 ext. 345", "020 7946 0958 ext. 345"),
        (
            "call +44 20 7946 0958 extension 4567 now",
            "+44 20 7946 0958 extension 4567",
        ),
        ("call +44 20 7946 0958 x 4567 now", "+44 20 7946 0958 x 4567"),
        (
            "phone 020 7946 0958 ext 123456789012345678901234567890",
            "020 7946 0958 ext 123456789012345678901234567890",
        ),
    ],
)
def test_phone_extension_kept_whole(detector, text, number):
    start = text.index(number)
    assert spans_of(detector, text) == [
        (start, start + len(number), "PHONE_NUMBER", number)
    ]


def test_phone_extension_in_long_text(detector):
    filler = "The build finished without errors. " * 300
    text = filler + "Reach me at 020 7946 0958 ext. 345 today. " + filler
    number = "020 7946 0958 ext. 345"
    start = text.index(number)
    assert spans_of(detector, text) == [
        (start, start + len(number), "PHONE_NUMBER", number)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Alice Smith から連絡がありました。明日の会議は東京で行います。"
        "よろしくお願いします。",
        "Alice Smith から連絡がありました！明日の会議は東京で行います？",
    ],
)
def test_name_span_stops_before_japanese_sentence(detector, text):
    assert spans_of(detector, text) == [(0, 11, "PERSON", "Alice Smith")]


def test_name_span_keeps_short_han_name(detector):
    text = "Call Chen Wei 陈伟 tomorrow."
    assert spans_of(detector, text) == [(5, 16, "PERSON", "Chen Wei 陈伟")]
