"""NDJSON streams of Ollama's /api/chat and /api/generate."""

from __future__ import annotations

import json

import pytest

from addons.shapes import ApiShape
from addons.streaming import rewriter_for

from .conftest import (
    ALICE_TOKEN,
    EMAIL_TOKEN,
    byte_chunks,
    compact,
    random_chunks,
    run_stream,
)

CREATED = "2025-01-01T00:00:00Z"


def chat_line(content: str, done: bool = False, **fields: object) -> bytes:
    document = {
        "model": "llama3",
        "created_at": CREATED,
        "message": {"role": "assistant", "content": content},
        "done": done,
        **fields,
    }
    return compact(document).encode() + b"\n"


def generate_line(response: str, done: bool = False, **fields: object) -> bytes:
    document = {
        "model": "llama3",
        "created_at": CREATED,
        "response": response,
        "done": done,
        **fields,
    }
    return compact(document).encode() + b"\n"


CHAT_STREAM = b"".join(
    [
        chat_line("Hi " + ALICE_TOKEN[:4]),
        chat_line(ALICE_TOKEN[4:] + ", write to bob@"),
        chat_line("example.test"),
        chat_line("", done=True, done_reason="stop", eval_count=9),
    ]
)
CHAT_CLIENT = b"".join(
    [
        chat_line("Hi "),
        chat_line("Alice Novak, write to "),
        chat_line(""),
        chat_line(EMAIL_TOKEN, done=True, done_reason="stop", eval_count=9),
    ]
)


def ollama_rewriter(processor, shape=ApiShape.OLLAMA_CHAT):
    return rewriter_for(shape, "application/x-ndjson", processor)


def test_chat_split_token_restored(processor):
    rewriter = ollama_rewriter(processor)
    lines = CHAT_STREAM.splitlines(keepends=True)

    first = rewriter.feed(lines[0])
    rest = b"".join(rewriter.feed(line) for line in lines[1:]) + rewriter.finish()

    assert first == chat_line("Hi ")
    assert first + rest == CHAT_CLIENT
    assert bytes(rewriter.recorded) == CHAT_CLIENT.replace(
        b"Alice Novak", ALICE_TOKEN.encode()
    )


@pytest.mark.parametrize("seed", range(10))
def test_chat_random_chunks(processor, seed):
    client, _ = run_stream(ollama_rewriter(processor), random_chunks(CHAT_STREAM, seed))

    assert client == CHAT_CLIENT


def test_chat_crlf_byte_by_byte(processor):
    stream = CHAT_STREAM.replace(b"\n", b"\r\n")

    client, _ = run_stream(ollama_rewriter(processor), byte_chunks(stream))

    assert client == CHAT_CLIENT.replace(b"\n", b"\r\n")


def test_chat_flushed_at_end_without_done(processor):
    stream = chat_line("Hi " + ALICE_TOKEN)

    client, recorded = run_stream(ollama_rewriter(processor), [stream])

    assert client == chat_line("Hi ") + chat_line("Alice Novak")
    assert recorded == chat_line("Hi ") + chat_line(ALICE_TOKEN)


def test_chat_last_line_without_newline(processor):
    stream = chat_line("Hi " + ALICE_TOKEN, done=True).rstrip(b"\n")

    client, _ = run_stream(ollama_rewriter(processor), byte_chunks(stream))

    assert client == chat_line("Hi Alice Novak", done=True)


def test_chat_tool_arguments_processed(processor):
    call = {
        "function": {
            "name": "send",
            "arguments": {"to": ALICE_TOKEN, "cc": ["bob@example.test"]},
        }
    }
    line = (
        compact(
            {
                "model": "llama3",
                "message": {"role": "assistant", "content": "", "tool_calls": [call]},
                "done": False,
            }
        ).encode()
        + b"\n"
    )

    client, recorded = run_stream(ollama_rewriter(processor), [line])

    expected_call = {
        "function": {
            "name": "send",
            "arguments": {"to": "Alice Novak", "cc": [EMAIL_TOKEN]},
        }
    }
    assert (
        client
        == compact(
            {
                "model": "llama3",
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [expected_call],
                },
                "done": False,
            }
        ).encode()
        + b"\n"
    )
    assert b"Alice Novak" not in recorded
    assert EMAIL_TOKEN.encode() in recorded


def test_generate_context_removed_at_done(processor):
    stream = generate_line("Dear " + ALICE_TOKEN[:6]) + generate_line(
        ALICE_TOKEN[6:], done=True, context=[1, 2, 3]
    )

    client, recorded = run_stream(
        ollama_rewriter(processor, ApiShape.OLLAMA_GENERATE), byte_chunks(stream)
    )

    assert client == generate_line("Dear ") + generate_line("Alice Novak", done=True)
    assert recorded == generate_line("Dear ") + generate_line(ALICE_TOKEN, done=True)


def test_error_line_processed(processor):
    stream = b'{"error":"unknown user bob@example.test"}\n'

    client, _ = run_stream(ollama_rewriter(processor), [stream])

    assert client == compact({"error": f"unknown user {EMAIL_TOKEN}"}).encode() + b"\n"


def test_non_json_line_processed_as_text(processor):
    stream = b"mail bob@example.test\n\n"

    client, recorded = run_stream(ollama_rewriter(processor), byte_chunks(stream))

    assert client == f"mail {EMAIL_TOKEN}\n\n".encode()
    assert recorded == client


def test_chat_string_arguments_escaped(processor):
    processor.entitled[ALICE_TOKEN] = 'Alice "Al" Novak'
    arguments = compact({"to": ALICE_TOKEN})
    call = {"function": {"name": "send", "arguments": arguments}}
    message = {"role": "assistant", "content": "", "tool_calls": [call]}
    line = compact({"message": message, "done": False}).encode() + b"\n"

    client, recorded = run_stream(ollama_rewriter(processor), [line])

    sent = json.loads(client)["message"]["tool_calls"][0]["function"]["arguments"]
    kept = json.loads(recorded)["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"to": 'Alice "Al" Novak'}
    assert kept == arguments


def test_chat_tool_call_without_arguments(processor):
    message = {"role": "assistant", "tool_calls": [{"function": {"name": "now"}}]}
    line = compact({"message": message, "done": False}).encode() + b"\n"

    client, _ = run_stream(ollama_rewriter(processor), [line])

    assert client == line
