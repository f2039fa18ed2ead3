"""Content text collection and rewriting by API shape, with a marker transform."""

import json

import pytest

from addons.shapes import (
    ApiShape,
    BodyError,
    collect_request_texts,
    collect_response_texts,
    shape_for,
)

IMAGE_URL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="


def mark(texts: list[str]) -> list[str]:
    return [f"<{text}>" for text in texts]


def rewrite_request(shape: ApiShape, document: object) -> object:
    body = json.dumps(document).encode()
    return json.loads(collect_request_texts(shape, body).transform(mark))


def rewrite_response(shape: ApiShape, document: object) -> object:
    body = json.dumps(document).encode()
    return json.loads(collect_response_texts(shape, body).transform(mark))


@pytest.mark.parametrize(
    ("path", "content_type", "expected"),
    [
        ("/v1/chat/completions", "application/json", ApiShape.OPENAI_CHAT),
        ("/openai/v1/chat/completions?x=1", "", ApiShape.OPENAI_CHAT),
        ("/v1/completions", "application/json", ApiShape.OPENAI_COMPLETIONS),
        ("/v1/embeddings", "application/json", ApiShape.OPENAI_EMBEDDINGS),
        ("/v1/responses", "application/json", ApiShape.OPENAI_RESPONSES),
        ("/api/chat", "application/x-www-form-urlencoded", ApiShape.OLLAMA_CHAT),
        ("/api/generate", "application/json", ApiShape.OLLAMA_GENERATE),
        ("/api/embed", "application/json", ApiShape.OLLAMA_EMBED),
        ("/api/embeddings", "application/json", ApiShape.OLLAMA_EMBED),
        ("/v1/messages", "application/json", ApiShape.ANTHROPIC_MESSAGES),
        ("/v1/messages/count_tokens", "application/json", ApiShape.ANTHROPIC_MESSAGES),
        ("/v1/threads/t1/messages", "application/json", ApiShape.GENERIC_JSON),
        ("/custom", "application/json; charset=utf-8", ApiShape.GENERIC_JSON),
        ("/custom", "text/plain; charset=utf-8", ApiShape.PLAIN_TEXT),
        ("/custom", "application/octet-stream", ApiShape.GENERIC_JSON),
    ],
)
def test_shape_for_paths(path: str, content_type: str, expected: ApiShape) -> None:
    assert shape_for(path, content_type) is expected


def test_openai_chat_string_and_parts() -> None:
    document = {
        "model": "llama-3",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "name": "alice", "content": "Hi"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "I am Alice Novak"},
                    {"type": "image_url", "image_url": {"url": IMAGE_URL}},
                    {"type": "text", "text": "second"},
                ],
            },
        ],
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert rewrite_request(ApiShape.OPENAI_CHAT, document) == {
        "model": "llama-3",
        "messages": [
            {"role": "system", "content": "<Be brief.>"},
            {"role": "user", "name": "<alice>", "content": "<Hi>"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<I am Alice Novak>"},
                    {"type": "image_url", "image_url": {"url": IMAGE_URL}},
                    {"type": "text", "text": "<second>"},
                ],
            },
        ],
        "temperature": 0.2,
        "max_tokens": 64,
    }


def test_openai_chat_tools_and_tool_calls() -> None:
    arguments = (
        '{"to": "alice@example.test", "cc": ["b"], "n": 2, "nested": {"k": "v"}}'
    )
    document = {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "send_mail", "arguments": arguments},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "note", "arguments": "not json"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "send_mail",
                    "description": "Send a mail",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "to": {"type": "string", "description": "recipient"},
                            "description": {"type": "string"},
                        },
                        "required": ["to"],
                    },
                },
            }
        ],
    }
    result = rewrite_request(ApiShape.OPENAI_CHAT, document)
    call = result["messages"][0]["tool_calls"][0]
    assert call["function"]["arguments"] == (
        '{"to": "<alice@example.test>", "cc": ["<b>"], "n": 2, "nested": {"k": "<v>"}}'
    )
    assert call["id"] == "call_1"
    assert call["function"]["name"] == "send_mail"
    assert result["messages"][0]["content"] is None
    assert (
        result["messages"][0]["tool_calls"][1]["function"]["arguments"] == "<not json>"
    )
    assert result["messages"][1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "<sent>",
    }
    function = result["tools"][0]["function"]
    assert function["description"] == "<Send a mail>"
    assert function["parameters"] == {
        "type": "object",
        "properties": {
            "to": {"type": "string", "description": "<recipient>"},
            "description": {"type": "string"},
        },
        "required": ["to"],
    }


def test_tool_call_arguments_keep_formatting() -> None:
    arguments = '{ "to" :\n "a\\u00e9", "keep": "x" }'
    document = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "f", "arguments": arguments}}],
            }
        ]
    }
    body = json.dumps(document).encode()
    texts = collect_request_texts(ApiShape.OPENAI_CHAT, body)
    assert texts.texts == ["a\u00e9", "x"]
    result = json.loads(texts.render(["[PERSON_1]", "x"]))
    rendered = result["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert rendered == '{ "to" :\n "[PERSON_1]", "keep": "x" }'


def test_completions_prompt_forms() -> None:
    assert rewrite_request(
        ApiShape.OPENAI_COMPLETIONS, {"model": "m", "prompt": "hi", "suffix": "end"}
    ) == {"model": "m", "prompt": "<hi>", "suffix": "<end>"}
    assert rewrite_request(
        ApiShape.OPENAI_COMPLETIONS, {"model": "m", "prompt": ["a", "b"]}
    ) == {"model": "m", "prompt": ["<a>", "<b>"]}
    token_ids = {"model": "m", "prompt": [1, 2, 3]}
    assert rewrite_request(ApiShape.OPENAI_COMPLETIONS, token_ids) == token_ids
    nested_ids = {"model": "m", "prompt": [[1, 2], [3]]}
    assert rewrite_request(ApiShape.OPENAI_COMPLETIONS, nested_ids) == nested_ids


def test_token_id_prompt_body_unchanged() -> None:
    body = b'{"model": "m", "prompt": [1, 2, 3]}'
    assert (
        collect_request_texts(ApiShape.OPENAI_COMPLETIONS, body).transform(mark) == body
    )


def test_embeddings_input_forms() -> None:
    assert rewrite_request(
        ApiShape.OPENAI_EMBEDDINGS, {"model": "e", "input": "x", "dimensions": 8}
    ) == {"model": "e", "input": "<x>", "dimensions": 8}
    assert rewrite_request(ApiShape.OPENAI_EMBEDDINGS, {"input": ["x", "y"]}) == {
        "input": ["<x>", "<y>"]
    }
    assert rewrite_request(ApiShape.OPENAI_EMBEDDINGS, {"input": [5, 6]}) == {
        "input": [5, 6]
    }


def test_responses_request_items() -> None:
    document = {
        "model": "m",
        "instructions": "Be kind",
        "input": [
            {"role": "user", "content": "plain"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "part"},
                    {"type": "input_image", "image_url": IMAGE_URL},
                ],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup",
                "arguments": '{"q":"x"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "result"},
        ],
        "tools": [
            {
                "type": "function",
                "name": "lookup",
                "description": "Look up",
                "parameters": {"type": "object", "properties": {}},
            }
        ],
    }
    assert rewrite_request(ApiShape.OPENAI_RESPONSES, document) == {
        "model": "m",
        "instructions": "<Be kind>",
        "input": [
            {"role": "user", "content": "<plain>"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "<part>"},
                    {"type": "input_image", "image_url": IMAGE_URL},
                ],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup",
                "arguments": '{"q":"<x>"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "<result>"},
        ],
        "tools": [
            {
                "type": "function",
                "name": "lookup",
                "description": "<Look up>",
                "parameters": {"type": "object", "properties": {}},
            }
        ],
    }
    assert rewrite_request(ApiShape.OPENAI_RESPONSES, {"model": "m", "input": "q"}) == {
        "model": "m",
        "input": "<q>",
    }


def test_ollama_chat_request() -> None:
    document = {
        "model": "llama3",
        "messages": [
            {"role": "user", "content": "hello", "images": ["iVBORw0KGgo="]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "f", "arguments": {"city": "Paris", "n": 1}}}
                ],
            },
        ],
        "options": {"temperature": 0},
        "stream": False,
    }
    assert rewrite_request(ApiShape.OLLAMA_CHAT, document) == {
        "model": "llama3",
        "messages": [
            {"role": "user", "content": "<hello>", "images": ["iVBORw0KGgo="]},
            {
                "role": "assistant",
                "content": "<>",
                "tool_calls": [
                    {
                        "function": {
                            "name": "f",
                            "arguments": {"city": "<Paris>", "n": 1},
                        }
                    }
                ],
            },
        ],
        "options": {"temperature": 0},
        "stream": False,
    }


def test_ollama_generate_and_embed() -> None:
    assert rewrite_request(
        ApiShape.OLLAMA_GENERATE,
        {
            "model": "m",
            "prompt": "p",
            "system": "s",
            "context": [1, 2],
            "images": ["QQ=="],
        },
    ) == {
        "model": "m",
        "prompt": "<p>",
        "system": "<s>",
        "context": [1, 2],
        "images": ["QQ=="],
    }
    assert rewrite_request(ApiShape.OLLAMA_EMBED, {"model": "m", "input": ["a"]}) == {
        "model": "m",
        "input": ["<a>"],
    }
    assert rewrite_request(ApiShape.OLLAMA_EMBED, {"model": "m", "prompt": "a"}) == {
        "model": "m",
        "prompt": "<a>",
    }


def test_anthropic_messages_request() -> None:
    document = {
        "model": "claude",
        "max_tokens": 100,
        "system": [
            {"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "calling"},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "send",
                        "input": {"to": "a@example.test", "list": ["x", 3]},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "block"}],
                    },
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBERi0=",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": "doc text",
                        },
                    },
                ],
            },
        ],
        "tools": [
            {
                "name": "send",
                "description": "Send",
                "input_schema": {
                    "type": "object",
                    "properties": {"to": {"type": "string", "description": "who"}},
                },
            }
        ],
    }
    result = rewrite_request(ApiShape.ANTHROPIC_MESSAGES, document)
    assert result == {
        "model": "claude",
        "max_tokens": 100,
        "system": [
            {"type": "text", "text": "<sys>", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": "<hi>"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "<calling>"},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "send",
                        "input": {"to": "<a@example.test>", "list": ["<x>", 3]},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "<ok>",
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "<block>"}],
                    },
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBERi0=",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": "<doc text>",
                        },
                    },
                ],
            },
        ],
        "tools": [
            {
                "name": "send",
                "description": "<Send>",
                "input_schema": {
                    "type": "object",
                    "properties": {"to": {"type": "string", "description": "<who>"}},
                },
            }
        ],
    }
    assert rewrite_request(
        ApiShape.ANTHROPIC_MESSAGES, {"system": "s", "messages": []}
    ) == {
        "system": "<s>",
        "messages": [],
    }


def test_generic_json_skips_structure() -> None:
    document = {
        "model": "m",
        "id": "abc",
        "type": "t",
        "note": "text",
        "items": [{"name": "Alice", "url": "https://example.test/a", "n": 3}],
        "blob": IMAGE_URL,
        "flag": True,
    }
    assert rewrite_request(ApiShape.GENERIC_JSON, document) == {
        "model": "m",
        "id": "abc",
        "type": "t",
        "note": "<text>",
        "items": [{"name": "<Alice>", "url": "https://example.test/a", "n": 3}],
        "blob": IMAGE_URL,
        "flag": True,
    }
    assert rewrite_request(ApiShape.GENERIC_JSON, ["a", 1]) == ["<a>", 1]
    assert rewrite_request(ApiShape.GENERIC_JSON, "root") == "<root>"


def test_plain_text_body() -> None:
    texts = collect_request_texts(ApiShape.PLAIN_TEXT, "héllo".encode())
    assert texts.texts == ["héllo"]
    assert texts.transform(mark) == "<héllo>".encode()


def test_empty_body_unchanged() -> None:
    texts = collect_request_texts(ApiShape.OPENAI_CHAT, b"")
    assert texts.texts == []
    assert texts.render([]) == b""


def test_unchanged_texts_return_same_bytes() -> None:
    body = b'{ "model" : "m", "messages": [{"role": "user", "content": "\\u00e9"}] }'
    texts = collect_request_texts(ApiShape.OPENAI_CHAT, body)
    assert texts.render(texts.texts) is body


def test_render_twice_with_different_texts() -> None:
    body = b'{"messages": [{"role": "user", "content": "a"}]}'
    texts = collect_request_texts(ApiShape.OPENAI_CHAT, body)
    first = texts.render(["x"])
    second = texts.render(["y"])
    assert first == b'{"messages":[{"role":"user","content":"x"}]}'
    assert second == b'{"messages":[{"role":"user","content":"y"}]}'


def test_invalid_json_raises_body_error() -> None:
    with pytest.raises(BodyError) as raised:
        collect_request_texts(ApiShape.OPENAI_CHAT, b'{"content": "Alice Novak"')
    assert "Alice" not in str(raised.value)
    assert str(raised.value).startswith("request body is not valid JSON")


def test_invalid_utf8_raises_body_error() -> None:
    with pytest.raises(BodyError):
        collect_request_texts(ApiShape.OPENAI_CHAT, b'{"content": "\xff"}')
    with pytest.raises(BodyError):
        collect_request_texts(ApiShape.PLAIN_TEXT, b"\xff")


def test_deep_nesting_raises_body_error() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(BodyError):
        collect_request_texts(ApiShape.GENERIC_JSON, body)


def test_lone_surrogate_in_content_raises_body_error() -> None:
    body = b'{"messages": [{"role": "user", "content": "\\ud800 Alice Novak"}]}'
    with pytest.raises(BodyError) as raised:
        collect_request_texts(ApiShape.OPENAI_CHAT, body)
    assert "surrogate" in str(raised.value)
    assert "Alice" not in str(raised.value)


def test_lone_surrogate_in_tool_arguments_raises_body_error() -> None:
    arguments = json.dumps({"to": "\ud800"})
    body = json.dumps(
        {"messages": [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "send", "arguments": arguments}}
        ]}]}
    ).encode()
    with pytest.raises(BodyError):
        collect_request_texts(ApiShape.OPENAI_CHAT, body)


def test_lone_surrogate_in_key_raises_body_error() -> None:
    body = b'{"metadata": {"\\ud800": "x"}, "messages": []}'
    with pytest.raises(BodyError) as raised:
        collect_request_texts(ApiShape.OPENAI_CHAT, body)
    assert "surrogate" in str(raised.value)


def test_lone_surrogate_in_structure_serializes() -> None:
    body = b'{"model": "\\ud800", "messages": [{"role": "user", "content": "a"}]}'
    texts = collect_request_texts(ApiShape.OPENAI_CHAT, body)
    rendered = texts.render(["b"])
    assert json.loads(rendered) == {
        "model": "\ud800",
        "messages": [{"role": "user", "content": "b"}],
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"messages": [{"role": "user", "content": "Alice Novak", "content": "hi"}]}',
        b'{"messages": [], "messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "m", "metadata": {"a": "x", "a": "y"}, "messages": []}',
    ],
)
def test_repeated_key_raises_body_error(body: bytes) -> None:
    with pytest.raises(BodyError) as raised:
        collect_request_texts(ApiShape.OPENAI_CHAT, body)
    assert str(raised.value) == "request body has an object with a repeated key"


def test_openai_chat_response_choices() -> None:
    document = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "answer",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":"b"}'},
                        }
                    ],
                },
                "finish_reason": "stop",
            },
            {"index": 1, "message": {"role": "assistant", "content": "second"}},
        ],
        "usage": {"prompt_tokens": 3},
    }
    result = rewrite_response(ApiShape.OPENAI_CHAT, document)
    assert result["choices"][0]["message"]["content"] == "<answer>"
    assert result["choices"][0]["message"]["tool_calls"][0]["function"] == {
        "name": "f",
        "arguments": '{"a":"<b>"}',
    }
    assert result["choices"][1]["message"]["content"] == "<second>"
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["id"] == "chatcmpl-1"
    assert result["usage"] == {"prompt_tokens": 3}


def test_completions_response_text() -> None:
    document = {"choices": [{"index": 0, "text": "t", "finish_reason": "length"}]}
    assert rewrite_response(ApiShape.OPENAI_COMPLETIONS, document) == {
        "choices": [{"index": 0, "text": "<t>", "finish_reason": "length"}]
    }


def test_responses_api_response() -> None:
    document = {
        "id": "resp_1",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "r"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "o", "annotations": []}],
            },
            {"type": "function_call", "name": "f", "arguments": '{"x":"y"}'},
        ],
        "error": None,
    }
    assert rewrite_response(ApiShape.OPENAI_RESPONSES, document) == {
        "id": "resp_1",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "<r>"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "<o>", "annotations": []}],
            },
            {"type": "function_call", "name": "f", "arguments": '{"x":"<y>"}'},
        ],
        "error": None,
    }


def test_anthropic_response_blocks() -> None:
    document = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "t"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": "b"}},
        ],
        "stop_reason": "end_turn",
    }
    assert rewrite_response(ApiShape.ANTHROPIC_MESSAGES, document) == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "<t>"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": "<b>"}},
        ],
        "stop_reason": "end_turn",
    }


def test_ollama_responses() -> None:
    assert rewrite_response(
        ApiShape.OLLAMA_CHAT,
        {"model": "m", "message": {"role": "assistant", "content": "c"}, "done": True},
    ) == {
        "model": "m",
        "message": {"role": "assistant", "content": "<c>"},
        "done": True,
    }
    assert rewrite_response(
        ApiShape.OLLAMA_GENERATE, {"model": "m", "response": "r", "context": [1]}
    ) == {"model": "m", "response": "<r>", "context": [1]}


@pytest.mark.parametrize(
    ("shape", "document", "expected"),
    [
        (
            ApiShape.OPENAI_CHAT,
            {"error": {"message": "m", "type": "invalid_request_error", "code": None}},
            {
                "error": {
                    "message": "<m>",
                    "type": "invalid_request_error",
                    "code": None,
                }
            },
        ),
        (
            ApiShape.ANTHROPIC_MESSAGES,
            {"type": "error", "error": {"type": "not_found_error", "message": "m"}},
            {"type": "error", "error": {"type": "not_found_error", "message": "<m>"}},
        ),
        (ApiShape.OLLAMA_CHAT, {"error": "m"}, {"error": "<m>"}),
        (
            ApiShape.OPENAI_EMBEDDINGS,
            {"object": "error", "message": "m", "code": 400},
            {"object": "error", "message": "<m>", "code": 400},
        ),
    ],
)
def test_error_messages_collected(
    shape: ApiShape, document: dict, expected: dict
) -> None:
    assert rewrite_response(shape, document) == expected


def test_embeddings_response_untouched() -> None:
    body = (
        b'{"object":"list","data":[{"object":"embedding","embedding":[0.1],"index":0}]}'
    )
    texts = collect_response_texts(ApiShape.OPENAI_EMBEDDINGS, body)
    assert texts.texts == []


@pytest.mark.parametrize(
    ("shape", "content_key"),
    [
        (ApiShape.OPENAI_CHAT, "messages"),
        (ApiShape.ANTHROPIC_MESSAGES, "messages"),
        (ApiShape.OLLAMA_GENERATE, "prompt"),
    ],
)
def test_unknown_top_level_fields_scanned(shape: ApiShape, content_key: str) -> None:
    document = {
        "model": "m",
        content_key: [],
        "metadata": {"customer": "Alice Novak", "tier": 2},
        "stop": ["END"],
        "temperature": 0.2,
    }
    assert rewrite_request(shape, document) == {
        "model": "m",
        content_key: [],
        "metadata": {"customer": "<Alice Novak>", "tier": 2},
        "stop": ["<END>"],
        "temperature": 0.2,
    }
