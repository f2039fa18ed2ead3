"""Token-shaped text is never part of a detected span, so tokens are not wrapped."""

import pytest

from addons.detection import DetectionSettings, Detector
from vault.tokens import TokenFormat


@pytest.fixture(scope="module")
def angle_detector() -> Detector:
    token_format = TokenFormat("<<{entity_type}:{id}>>")
    return Detector(DetectionSettings(token_format=token_format, workers=0))


def found(detector: Detector, text: str) -> list[tuple[int, int, str, str]]:
    return [
        (span.start, span.end, span.entity_type, text[span.start : span.end])
        for span in detector.detect(text)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "[SECRET_13]",
        "Send it to [SECRET_13] and [PERSON_21] now",
        "paid with [CARD_4111111111111111] today",
    ],
)
def test_default_tokens_not_detected(detector, text):
    assert found(detector, text) == []


def test_token_shape_with_one_digit_skipped(detector):
    text = "[UPPER_CASE_7] lives in Paris"
    assert found(detector, text) == [(24, 29, "LOCATION", "Paris")]


def test_name_next_to_token_kept(detector):
    text = "Meet Anna Berg and [PERSON_21] in Berlin"
    assert found(detector, text) == [
        (5, 14, "PERSON", "Anna Berg"),
        (34, 40, "LOCATION", "Berlin"),
    ]


def test_configured_token_format_skipped(detector, angle_detector):
    text = "paid with <<CARD:4111111111111111>> today"
    assert found(detector, text) == [(17, 33, "CREDIT_CARD", "4111111111111111")]
    assert found(angle_detector, text) == []


def test_default_shape_skipped_with_other_format(angle_detector):
    text = "Send it to [SECRET_13] and [PERSON_21] now"
    assert found(angle_detector, text) == []
