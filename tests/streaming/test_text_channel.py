"""Held tails and releases of one text channel."""

from __future__ import annotations

import pytest

from addons.streaming_text import (
    CONTEXT_CHARS,
    MAX_HELD_CHARS,
    ReleasedText,
    TextChannel,
    held_tail_length,
)
from vault.tokens import DEFAULT_FORMAT

from .conftest import ALICE_TOKEN, EMAIL_TOKEN, DictProcessor


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("Hi [PERS", "[PERS"),
        ("Hi [pers", "[pers"),
        ("see PERSON_1", "PERSON_1"),
        ("Hi Alice", "Hi Alice"),
        ("Hi Alice ", "Hi Alice "),
        ("Hi Alice Novak,", "Hi Alice Novak,"),
        ("Hi Alice Novak, ", ""),
        ("Hi Alice Novak, done", "done"),
        ("call 555 01", "555 01"),
        ("call +1 (555) ", "+1 (555) "),
        ("mail alice@exa", "alice@exa"),
        ("IBAN DE89 3704 0044", "DE89 3704 0044"),
        ("**Jonas Ferreira-Ek", "**Jonas Ferreira-Ek"),
        ("first line\n", ""),
        ("Novak\nnext ", ""),
        ("plain words here ", ""),
        ("", ""),
    ],
)
def test_held_tail(text, held):
    length = held_tail_length(text, DEFAULT_FORMAT)

    assert text[len(text) - length :] == held


def test_held_tail_capped_for_long_run():
    text = "key " + "x" * 300

    assert held_tail_length(text, DEFAULT_FORMAT) == MAX_HELD_CHARS


def test_held_tail_capped_for_long_name():
    text = "to " + "Name " * 60

    assert held_tail_length(text, DEFAULT_FORMAT) <= MAX_HELD_CHARS


def test_push_releases_before_held_tail():
    channel = TextChannel(DictProcessor(), DEFAULT_FORMAT)

    released = channel.push("Hello there, [PERS")

    assert released == ReleasedText("Hello there, ", "Hello there, ")
    assert channel.pending == "[PERS"


def test_flush_releases_everything():
    processor = DictProcessor(entitled={ALICE_TOKEN: "Alice Novak"})
    channel = TextChannel(processor, DEFAULT_FORMAT)
    channel.push("Hi " + ALICE_TOKEN[:3])

    released = channel.push(ALICE_TOKEN[3:]) + channel.flush()

    assert released == ReleasedText("Alice Novak", ALICE_TOKEN)
    assert channel.pending == ""


def test_tokenize_gets_left_context():
    processor = DictProcessor()
    channel = TextChannel(processor, DEFAULT_FORMAT)
    channel.push("please mail the ")

    channel.push("report now ")

    assert processor.tokenize_calls == [
        "please mail the ",
        "please mail the report now ",
    ]


def test_left_context_bounded_to_whole_words():
    processor = DictProcessor()
    channel = TextChannel(processor, DEFAULT_FORMAT)
    channel.push("word " * 30)

    channel.push("end ")

    context = processor.tokenize_calls[-1].removesuffix("end ")
    assert len(context) <= CONTEXT_CHARS
    assert context.startswith("word ")


def test_span_into_context_falls_back_to_new_text():
    processor = DictProcessor(model_values={"bob\n@example.test": EMAIL_TOKEN})
    channel = TextChannel(processor, DEFAULT_FORMAT)
    channel.push("to bob\n")

    released = channel.push("@example.test ")

    assert released == ReleasedText("@example.test ", "@example.test ")
    assert processor.tokenize_calls[-1] == "@example.test "


def test_json_fragment_escapes_restored_value():
    processor = DictProcessor(entitled={ALICE_TOKEN: 'A "B"\nC'})
    channel = TextChannel(processor, DEFAULT_FORMAT, json_fragment=True)

    released = channel.push('{"to": "' + ALICE_TOKEN + '"} ')

    assert released.client == '{"to": "A \\"B\\"\\nC"} '
    assert released.recorded == '{"to": "' + ALICE_TOKEN + '"} '


def test_empty_push_calls_nothing():
    processor = DictProcessor()
    channel = TextChannel(processor, DEFAULT_FORMAT)

    assert channel.push("") == ReleasedText("", "")
    assert channel.flush() == ReleasedText("", "")
    assert processor.tokenize_calls == []


def test_min_release_batches_after_first():
    processor = DictProcessor()
    channel = TextChannel(processor, DEFAULT_FORMAT, min_release_chars=20)

    first = channel.push("Hi, ")
    second = channel.push("this is ")
    third = channel.push("a longer reply ")

    assert first == ReleasedText("Hi, ", "Hi, ")
    assert second == ReleasedText("", "")
    assert third == ReleasedText("this is a longer reply ", "this is a longer reply ")
    assert processor.tokenize_calls == ["Hi, ", "Hi, this is a longer reply "]
