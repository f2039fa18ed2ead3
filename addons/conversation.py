"""Conversation text of recorded model API bodies, for transcripts and comparisons.

Requests give the messages a client sent, by role; answers give the model's text,
with streamed SSE and NDJSON deltas joined back into whole messages. A body that does
not parse comes back whole as one turn with the role "body".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mitmproxy import http


@dataclass(frozen=True)
class Turn:
    """One piece of conversation text and the role that produced it."""

    role: str
    text: str


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _content_text(content: Any) -> str:
    """Flatten message content: a string, a list of parts, or content blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return json.dumps(content)
    pieces: list[str] = []
    for part in content:
        if isinstance(part, str):
            pieces.append(part)
            continue
        if not isinstance(part, dict):
            continue
        part_type = part.get("type", "")
        if isinstance(part.get("text"), str):
            pieces.append(part["text"])
        elif part_type == "tool_use":
            arguments = json.dumps(part.get("input", {}), ensure_ascii=False)
            pieces.append(f"tool call {part.get('name', '?')}({arguments})")
        elif part_type == "tool_result":
            pieces.append(f"tool result: {_content_text(part.get('content'))}")
        elif part_type in ("image_url", "image", "input_image"):
            pieces.append("[image]")
        elif part_type in ("input_audio", "audio"):
            pieces.append("[audio]")
    return "\n".join(piece for piece in pieces if piece)


def _tool_calls_text(tool_calls: Any) -> list[str]:
    lines: list[str] = []
    if not isinstance(tool_calls, list):
        return lines
    for call in tool_calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        lines.append(f"tool call {function.get('name', '?')}({arguments})")
    return lines


def _message_turn(message: dict[str, Any]) -> Turn:
    role = str(message.get("role") or message.get("type") or "message")
    pieces = [_content_text(message.get("content"))]
    pieces.extend(_tool_calls_text(message.get("tool_calls")))
    if message.get("type") == "function_call":
        pieces.append(f"tool call {message.get('name', '?')}({message.get('arguments')})")
    if message.get("type") == "function_call_output":
        pieces.append(f"tool result: {message.get('output', '')}")
    return Turn(role, "\n".join(piece for piece in pieces if piece))


def request_turns(body: bytes | None) -> list[Turn]:
    """Extract the conversation of a request body, in order.

    Understands OpenAI chat, completions, embeddings and Responses bodies, Anthropic
    Messages and Ollama chat, generate and embed bodies. Any other body is shown as
    its text.
    """
    if not body:
        return []
    document = _parse_json(body)
    if not isinstance(document, dict):
        return [Turn("body", body.decode("utf-8", "replace"))]

    turns: list[Turn] = []
    for key in ("system", "instructions"):
        if document.get(key):
            turns.append(Turn("system", _content_text(document[key])))
    messages = document.get("messages")
    if isinstance(messages, list):
        turns.extend(_message_turn(m) for m in messages if isinstance(m, dict))
    prompt = document.get("prompt")
    if isinstance(prompt, str):
        turns.append(Turn("prompt", prompt))
    elif isinstance(prompt, list):
        turns.extend(Turn("prompt", str(p)) for p in prompt)
    user_input = document.get("input")
    if isinstance(user_input, str):
        turns.append(Turn("input", user_input))
    elif isinstance(user_input, list):
        for item in user_input:
            if isinstance(item, dict):
                turns.append(_message_turn(item))
            else:
                turns.append(Turn("input", str(item)))
    if not turns:
        turns.append(Turn("body", body.decode("utf-8", "replace")))
    return turns


class _AnswerBuilder:
    """Collects answer text per output, in the order outputs first appear.

    Streams send a tool call's name once and its arguments in pieces, so tool calls
    are keyed by their index and named when the name arrives.
    """

    def __init__(self) -> None:
        self.parts: dict[str, list[str]] = {}
        self.tool_names: dict[str, str] = {}

    def add(self, key: str, text: Any) -> None:
        if isinstance(text, str) and text:
            self.parts.setdefault(key, []).append(text)

    def add_tool_call(self, key: str, name: Any, arguments: Any) -> None:
        self.parts.setdefault(key, [])
        if isinstance(name, str) and name:
            self.tool_names[key] = name
        if not isinstance(arguments, str) and arguments is not None:
            arguments = json.dumps(arguments, ensure_ascii=False)
        self.add(key, arguments)

    def turns(self) -> list[Turn]:
        turns = []
        for key, texts in self.parts.items():
            role = key
            if key in self.tool_names:
                role = f"{key.split('#')[0]}tool call {self.tool_names[key]}"
            turns.append(Turn(role, "".join(texts)))
        return turns


def _add_choice(answer: _AnswerBuilder, choice: dict[str, Any], streamed: bool) -> None:
    index = choice.get("index", 0)
    role = "assistant" if index in (0, None) else f"assistant[{index}]"
    message = choice.get("delta" if streamed else "message")
    if isinstance(message, dict):
        answer.add(role, _content_text(message.get("content")))
        for position, call in enumerate(message.get("tool_calls") or []):
            if not isinstance(call, dict):
                continue
            function = call.get("function") or {}
            call_index = call.get("index", position)
            answer.add_tool_call(
                f"{role} #{call_index}", function.get("name"), function.get("arguments")
            )
    answer.add(role, choice.get("text"))


def _add_document(answer: _AnswerBuilder, document: Any, streamed: bool) -> None:
    """Add the answer text of one response document or one stream event."""
    if not isinstance(document, dict):
        return
    for choice in document.get("choices") or []:
        if isinstance(choice, dict):
            _add_choice(answer, choice, streamed)

    # Ollama chat and generate
    message = document.get("message")
    if isinstance(message, dict):
        answer.add("assistant", _content_text(message.get("content")))
        for position, call in enumerate(message.get("tool_calls") or []):
            if isinstance(call, dict):
                function = call.get("function") or {}
                answer.add_tool_call(
                    f"assistant #{position}",
                    function.get("name"),
                    function.get("arguments"),
                )
    answer.add("assistant", document.get("response"))

    # Anthropic Messages
    event_type = document.get("type", "")
    if event_type == "message" or (not streamed and "content" in document):
        answer.add("assistant", _content_text(document.get("content")))
    if event_type == "content_block_start":
        block = document.get("content_block") or {}
        if block.get("type") == "tool_use":
            key = f"assistant #{document.get('index', 0)}"
            answer.add_tool_call(key, block.get("name"), None)
        answer.add("assistant", block.get("text"))
    if event_type == "content_block_delta":
        delta = document.get("delta") or {}
        answer.add("assistant", delta.get("text"))
        if "partial_json" in delta:
            key = f"assistant #{document.get('index', 0)}"
            answer.add_tool_call(key, None, delta["partial_json"])

    # OpenAI Responses
    if isinstance(document.get("output"), list):
        for item in document["output"]:
            if isinstance(item, dict):
                turn = _message_turn(item)
                answer.add(turn.role, turn.text)
    if event_type == "response.output_text.delta":
        answer.add("assistant", document.get("delta"))
    if event_type == "response.output_item.added":
        item = document.get("item") or {}
        if item.get("type") == "function_call":
            key = f"assistant #{document.get('output_index', 0)}"
            answer.add_tool_call(key, item.get("name"), None)
    if event_type == "response.function_call_arguments.delta":
        key = f"assistant #{document.get('output_index', 0)}"
        answer.add_tool_call(key, None, document.get("delta"))

    error = document.get("error")
    if isinstance(error, dict):
        answer.add("error", str(error.get("message", "")))
    elif isinstance(error, str):
        answer.add("error", error)


def _sse_data(text: str) -> Iterator[str]:
    """Yield the data of each server-sent event."""
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = [
            line[5:].removeprefix(" ")
            for line in event.split("\n")
            if line.startswith("data:")
        ]
        if data:
            yield "\n".join(data)


def answer_turns(body: bytes | None, content_type: str = "") -> list[Turn]:
    """Extract the answer text of a response body, assembling streamed deltas."""
    if not body:
        return []
    text = body.decode("utf-8", "replace")
    answer = _AnswerBuilder()
    if "text/event-stream" in content_type:
        for data in _sse_data(text):
            if data.strip() != "[DONE]":
                _add_document(answer, _parse_json(data.encode()), streamed=True)
        return answer.turns()

    document = _parse_json(body)
    if document is not None:
        _add_document(answer, document, streamed=False)
    else:
        lines = [_parse_json(line.encode()) for line in text.splitlines() if line]
        if lines and all(isinstance(line, dict) for line in lines):
            for line in lines:
                _add_document(answer, line, streamed=True)
        else:
            return [Turn("body", text)]
    turns = answer.turns()
    if not turns and isinstance(document, dict):
        for key in ("data", "embeddings", "embedding"):
            if key in document:
                return [Turn("embeddings", "[embedding vectors]")]
    return turns


def flow_answer(flow: http.HTTPFlow) -> list[Turn]:
    """Return the recorded answer of a flow."""
    if flow.response is None:
        return []
    content_type = flow.response.headers.get("content-type", "")
    return answer_turns(flow.response.get_content(strict=False), content_type)
