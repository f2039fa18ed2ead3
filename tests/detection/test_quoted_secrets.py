"""Exact spans of secret assignments whose values are quoted or contain spaces."""

import pytest

from addons.detection import Detector


def spans_of(detector: Detector, text: str) -> list[tuple[int, int, str, str]]:
    return [
        (span.start, span.end, span.entity_type, text[span.start : span.end])
        for span in detector.detect(text)
    ]


def quoted_span(text: str, value: str) -> tuple[int, int, str, str]:
    start = text.index(value)
    return (start, start + len(value), "SECRET", value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('password: "correct horse battery staple"', "correct horse battery staple"),
        ("password: 'correct horse battery staple'", "correct horse battery staple"),
        ('db_password="my long pass phrase"', "my long pass phrase"),
        ("DB_PASSWORD='my long pass phrase'\n", "my long pass phrase"),
        ('export API_TOKEN="two words"', "two words"),
        ('password = "correct horse battery staple"', "correct horse battery staple"),
        (
            '{"password": "correct horse battery staple"}',
            "correct horse battery staple",
        ),
        ("db:\n  password: 'it is me, Mario'\n", "it is me, Mario"),
        ('pwd := "semi;colon, comma (x)"', "semi;colon, comma (x)"),
        ('client_secret = "it\'s quoted"', "it's quoted"),
        ('{"token": "a \\"quoted\\" word"}', 'a \\"quoted\\" word'),
        ('the password is "open sesame now"', "open sesame now"),
        ('password: "changeme"', "changeme"),
    ],
)
def test_quoted_secret_is_whole_value(detector, text, value):
    assert spans_of(detector, text) == [quoted_span(text, value)]


@pytest.mark.parametrize(
    "text",
    [
        'password: "<your password>"',
        'password: "***"',
        'password: "*** ***"',
        'password: ""',
        "password: ''",
        'password: "${DB_PASSWORD}"',
        'password: "{{ vault_db_password }}"',
        'password: "short"',
    ],
)
def test_quoted_placeholder_not_secret(detector, text):
    assert spans_of(detector, text) == []


def test_unquoted_secret_stops_at_whitespace(detector):
    text = "password: hunter2 and more words"
    assert spans_of(detector, text) == [(10, 17, "SECRET", "hunter2")]


def test_unclosed_quote_takes_first_word(detector):
    text = 'password: "hunter2 and more words'
    assert spans_of(detector, text) == [(11, 18, "SECRET", "hunter2")]


def test_quoted_value_ends_at_line_end(detector):
    text = 'password: "hunter2 and\nmore words"'
    assert spans_of(detector, text) == [(11, 18, "SECRET", "hunter2")]


def test_two_quoted_secrets_on_one_line(detector):
    text = '{"password": "first pass phrase", "api_key": "second key value"}'
    assert spans_of(detector, text) == [
        quoted_span(text, "first pass phrase"),
        quoted_span(text, "second key value"),
    ]
