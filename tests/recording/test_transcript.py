"""Conversation text extracted from recorded request and response bodies."""

from __future__ import annotations

import json

from addons.replay import Turn
from addons.replay import answer_turns
from addons.replay import request_turns
from addons.replay import transcript_entries

from tests.recording.conftest import chat_request_body
from tests.recording.conftest import chat_response_body
from tests.recording.conftest import model_flow


def sse(*events: dict | str) -> bytes:
    lines = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        lines.append(f"data: {data}\n\n")
    return "".join(lines).encode()


def test_request_openai_chat_messages():
    body = chat_request_body(("system", "be brief"), ("user", "I am [PERSON_12]"))

    assert request_turns(body) == [
        Turn("system", "be brief"),
        Turn("user", "I am [PERSON_12]"),
    ]


def test_request_content_parts_and_tool_calls():
    body = json.dumps(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "data:x"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {
                                "name": "send",
                                "arguments": '{"to":"[EMAIL_ADDRESS_14]"}',
                            },
                        }
                    ],
                },
            ]
        }
    ).encode()

    assert request_turns(body) == [
        Turn("user", "look\n[image]"),
        Turn("assistant", 'tool call send({"to":"[EMAIL_ADDRESS_14]"})'),
    ]


def test_request_anthropic_system_and_blocks():
    body = json.dumps(
        {
            "system": "sys",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
        }
    ).encode()

    assert request_turns(body) == [Turn("system", "sys"), Turn("user", "hi")]


def test_request_prompt_and_input():
    assert request_turns(b'{"prompt": "p1"}') == [Turn("prompt", "p1")]
    assert request_turns(b'{"input": ["a", "b"]}') == [
        Turn("input", "a"),
        Turn("input", "b"),
    ]


def test_request_not_json_shown_as_text():
    assert request_turns(b"plain [PERSON_12]") == [Turn("body", "plain [PERSON_12]")]


def test_answer_openai_chat():
    assert answer_turns(chat_response_body("Hi [PERSON_12]"), "application/json") == [
        Turn("assistant", "Hi [PERSON_12]")
    ]


def test_answer_openai_stream_assembles_deltas():
    body = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi [PERS"}}]},
        {"choices": [{"index": 0, "delta": {"content": "ON_12], done"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"total_tokens": 3}},
        "[DONE]",
    )

    assert answer_turns(body, "text/event-stream") == [
        Turn("assistant", "Hi [PERSON_12], done")
    ]


def test_answer_stream_tool_call_arguments():
    call_start = {
        "index": 0,
        "id": "t1",
        "function": {"name": "send", "arguments": '{"to":'},
    }
    call_rest = {"index": 0, "function": {"arguments": '"[EMAIL_ADDRESS_14]"}'}}
    body = sse(
        {"choices": [{"index": 0, "delta": {"tool_calls": [call_start]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call_rest]}}]},
        "[DONE]",
    )

    assert answer_turns(body, "text/event-stream") == [
        Turn("assistant tool call send", '{"to":"[EMAIL_ADDRESS_14]"}')
    ]


def test_answer_anthropic_stream():
    body = (
        b"event: message_start\ndata: "
        + json.dumps({"type": "message_start", "message": {"content": []}}).encode()
        + b"\n\n"
        + sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello "}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "[PERSON_12]"}},
            {"type": "message_stop"},
        )
    )

    assert answer_turns(body, "text/event-stream") == [
        Turn("assistant", "Hello [PERSON_12]")
    ]


def test_answer_ollama_ndjson():
    lines = [
        {"message": {"role": "assistant", "content": "Hi "}, "done": False},
        {"message": {"role": "assistant", "content": "[PERSON_12]"}, "done": False},
        {"done": True},
    ]
    body = "\n".join(json.dumps(line) for line in lines).encode() + b"\n"

    assert answer_turns(body, "application/x-ndjson") == [
        Turn("assistant", "Hi [PERSON_12]")
    ]


def test_answer_responses_api_output():
    body = json.dumps(
        {
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "ok"}],
                }
            ]
        }
    ).encode()

    assert answer_turns(body, "application/json") == [Turn("assistant", "ok")]


def test_answer_error_body():
    body = b'{"error": {"message": "model not found", "type": "x"}}'

    assert answer_turns(body, "application/json") == [Turn("error", "model not found")]


def test_answer_embeddings_not_printed():
    body = b'{"data": [{"embedding": [0.1, 0.2]}]}'

    assert answer_turns(body, "application/json") == [
        Turn("embeddings", "[embedding vectors]")
    ]


def test_transcript_omits_repeated_history():
    first = model_flow(
        recorded_request=chat_request_body(("user", "I am [PERSON_12]")),
        recorded_response=chat_response_body("Hi [PERSON_12]"),
    )
    second = model_flow(
        recorded_request=chat_request_body(
            ("user", "I am [PERSON_12]"),
            ("assistant", "Hi [PERSON_12]"),
            ("user", "bye"),
        ),
        recorded_response=chat_response_body("Bye"),
    )
    first.request.content = first.metadata["tokengate"]["recorded_request"]
    first.response.content = first.metadata["tokengate"]["recorded_response"]
    second.request.content = second.metadata["tokengate"]["recorded_request"]
    second.response.content = second.metadata["tokengate"]["recorded_response"]

    entries = transcript_entries([first, second])

    assert entries[0].turns == [Turn("user", "I am [PERSON_12]")]
    assert entries[0].omitted == 0
    assert entries[1].turns == [Turn("user", "bye")]
    assert entries[1].omitted == 2
    assert entries[1].answer == [Turn("assistant", "Bye")]
