"""Content text of model API bodies, found by API shape.

A body is parsed once, the strings that carry content are collected in document order,
and `ContentTexts.render` writes replacements for them back into the same document. The
caller transforms the whole batch at once, so one request costs one vault transaction.

Only content is collected: model names, roles, ids, numbers, token-id arrays, image
and other base64 data stay as they are. A rendered JSON body has the same values as
the input apart from the replaced strings, but is re-serialized compactly, so the
whitespace and string escapes of unchanged parts may differ from the input bytes.
Tool-call arguments, which are JSON inside a string, are the exception: only their
changed string literals are re-encoded, so their formatting survives.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ApiShape",
    "BodyError",
    "ContentTexts",
    "collect_request_texts",
    "collect_response_texts",
    "shape_for",
]


class ApiShape(enum.Enum):
    OPENAI_CHAT = "openai_chat"
    OPENAI_COMPLETIONS = "openai_completions"
    OPENAI_EMBEDDINGS = "openai_embeddings"
    OPENAI_RESPONSES = "openai_responses"
    OLLAMA_CHAT = "ollama_chat"
    OLLAMA_GENERATE = "ollama_generate"
    OLLAMA_EMBED = "ollama_embed"
    ANTHROPIC_MESSAGES = "anthropic_messages"
    GENERIC_JSON = "generic_json"
    PLAIN_TEXT = "plain_text"


class BodyError(Exception):
    """A body that cannot be decoded or parsed. The message never contains body text."""


# Path suffixes, checked in order, so "/api/embeddings" is matched before "/embeddings".
_PATH_SHAPES: tuple[tuple[str, ApiShape], ...] = (
    ("/api/chat", ApiShape.OLLAMA_CHAT),
    ("/api/generate", ApiShape.OLLAMA_GENERATE),
    ("/api/embed", ApiShape.OLLAMA_EMBED),
    ("/api/embeddings", ApiShape.OLLAMA_EMBED),
    ("/chat/completions", ApiShape.OPENAI_CHAT),
    ("/completions", ApiShape.OPENAI_COMPLETIONS),
    ("/embeddings", ApiShape.OPENAI_EMBEDDINGS),
    ("/responses", ApiShape.OPENAI_RESPONSES),
    ("/v1/messages", ApiShape.ANTHROPIC_MESSAGES),
    ("/v1/messages/count_tokens", ApiShape.ANTHROPIC_MESSAGES),
)


def shape_for(path: str, content_type: str) -> ApiShape:
    """Return the API shape of a request path, or a generic shape by content type.

    A known model API path decides alone, because clients such as `curl -d` send JSON
    under a form content type. Other paths are plain text for `text/*` and generic JSON
    for everything else, so a body that is not JSON raises BodyError instead of being
    passed on unread.
    """
    route = path.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    for suffix, shape in _PATH_SHAPES:
        if route.endswith(suffix):
            return shape

    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type.startswith("text/"):
        return ApiShape.PLAIN_TEXT
    return ApiShape.GENERIC_JSON


# Keys whose string values are structure, not content, in bodies of unknown shape.
STRUCTURAL_KEYS = frozenset(
    {
        "audio",
        "b64_json",
        "base64",
        "call_id",
        "created",
        "encoding_format",
        "encrypted_content",
        "file_id",
        "finish_reason",
        "id",
        "image",
        "image_url",
        "images",
        "media_type",
        "mime_type",
        "model",
        "object",
        "role",
        "signature",
        "stop_reason",
        "system_fingerprint",
        "tool_call_id",
        "tool_use_id",
        "type",
        "uri",
        "url",
    }
)

# Strings that are binary data even under a key that usually carries content.
_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+(?:;[\w=.+-]+)*;base64,", re.ASCII)
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_-]{256,}={0,2}", re.ASCII)

# A JSON string literal. Applied only to text that json.loads accepted, where every
# double quote outside a literal opens one.
_JSON_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_WHITESPACE = " \t\n\r"

# Content part types of OpenAI-style APIs whose payload is binary or a reference.
_BINARY_PART_TYPES = frozenset(
    {
        "audio_url",
        "file",
        "image",
        "image_url",
        "input_audio",
        "input_file",
        "input_image",
        "redacted_thinking",
        "video_url",
    }
)
# Content part types and the key that carries their text.
_TEXT_PART_KEYS = {
    "input_text": "text",
    "output_text": "text",
    "reasoning_text": "text",
    "refusal": "refusal",
    "summary_text": "text",
    "text": "text",
    "thinking": "thinking",
}


def is_binary_data(value: str) -> bool:
    """Return whether a string is a data URL or a long base64 blob."""
    return bool(_DATA_URL.match(value) or _BASE64_BLOB.fullmatch(value))


@dataclass
class _Slot:
    """A string at container[key] that is one collected text."""

    container: dict[str, Any] | list[Any]
    key: str | int
    index: int


@dataclass
class _JsonTextSlot:
    """A string at container[key] that contains JSON, with its string values collected.

    `literals` are the (start, end) spans of the collected value literals in `source`,
    and `first_index` is the position of the first of them in the collected texts.
    """

    container: dict[str, Any] | list[Any]
    key: str | int
    source: str
    literals: list[tuple[int, int]]
    first_index: int


class ContentTexts:
    """Content strings collected from one body, in document order.

    `texts` is the batch to transform. `render` returns the body with the replacements
    in place and may be called more than once, for example once with tokenized text for
    the recording and once with restored text for the client.
    """

    def __init__(
        self,
        body: bytes,
        root: list[Any] | None,
        texts: list[str],
        slots: list[_Slot | _JsonTextSlot],
        plain_text: bool = False,
    ) -> None:
        self.body = body
        self.texts = texts
        # The parsed document sits in a one-item list, so a root string is a slot too.
        self._root = root
        self._slots = slots
        self._plain_text = plain_text

    def render(self, replacements: Sequence[str]) -> bytes:
        """Return the body with `replacements[i]` in place of `texts[i]`.

        The input body comes back unchanged when no text changed.
        """
        if len(replacements) != len(self.texts):
            raise ValueError(
                f"expected {len(self.texts)} replacement texts, got {len(replacements)}"
            )
        if list(replacements) == self.texts:
            return self.body
        if self._plain_text:
            return _encode_text(replacements[0])

        for slot in self._slots:
            if isinstance(slot, _Slot):
                slot.container[slot.key] = replacements[slot.index]
            else:
                slot.container[slot.key] = _render_json_text(slot, replacements)
        assert self._root is not None
        try:
            return _serialize(self._root[0])
        except RecursionError:
            raise BodyError("body is nested too deeply to serialize") from None

    def transform(self, transform: Callable[[list[str]], Sequence[str]]) -> bytes:
        """Return the body rendered with `transform(texts)`."""
        return self.render(transform(list(self.texts)))


def _render_json_text(slot: _JsonTextSlot, replacements: Sequence[str]) -> str:
    pieces: list[str] = []
    position = 0
    for offset, (start, end) in enumerate(slot.literals):
        replacement = replacements[slot.first_index + offset]
        pieces.append(slot.source[position:start])
        if replacement == json.loads(slot.source[start:end]):
            pieces.append(slot.source[start:end])
        else:
            pieces.append(json.dumps(replacement, ensure_ascii=False))
        position = end
    pieces.append(slot.source[position:])
    return "".join(pieces)


def _encode_text(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _serialize(document: Any) -> bytes:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from a "\ud800" escape has no UTF-8 form, so escape all.
        return json.dumps(document, separators=(",", ":")).encode("ascii")


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build an object, raising on a repeated key or a key with no UTF-8 form.

    Parsers differ on which copy of a repeated key wins: Python keeps the last, others
    the first. A body with both copies could pass one value through the gateway's check
    while the model reads the other, so such a body is rejected.
    """
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _DuplicateKeyError
    for key in document:
        _checked_text(key)
    return document


def _parse_json(body: bytes, side: str) -> Any:
    try:
        return json.loads(body, object_pairs_hook=_reject_duplicate_keys)
    except _DuplicateKeyError:
        raise BodyError(f"{side} body has an object with a repeated key") from None
    except UnicodeDecodeError:
        raise BodyError(f"{side} body is not valid UTF-8 JSON") from None
    except json.JSONDecodeError as error:
        raise BodyError(
            f"{side} body is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}"
        ) from None
    except RecursionError:
        raise BodyError(f"{side} body is nested too deeply to parse") from None


def _checked_text(text: str) -> str:
    """Return `text`, or raise BodyError when it has no UTF-8 form.

    A "\\ud800" escape in JSON decodes to a lone surrogate, which neither detection
    nor the vault can encode.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyError(
            "body has a string with a lone UTF-16 surrogate escape (such as \\ud800)"
        ) from None
    return text


class _Collector:
    """Walks a parsed body and records which strings are content."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.slots: list[_Slot | _JsonTextSlot] = []
        # (id(container), key) of every collected string, so no string is taken twice.
        self._collected: set[tuple[int, str | int]] = set()

    def text(self, container: Any, key: str | int) -> None:
        """Collect container[key] when it is a string."""
        value = _get(container, key)
        if isinstance(value, str) and not self._is_collected(container, key):
            self._collected.add((id(container), key))
            self.slots.append(_Slot(container, key, len(self.texts)))
            self.texts.append(_checked_text(value))

    def texts_or_strings(self, container: Any, key: str | int) -> None:
        """Collect a string, or the strings of a list, but no numbers (token ids)."""
        value = _get(container, key)
        if isinstance(value, str):
            self.text(container, key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    self.text(value, index)

    def json_text(self, container: Any, key: str | int) -> None:
        """Collect the string values inside a string that contains JSON.

        Keys inside the JSON stay as they are. A string that is not valid JSON, such as
        a partial streamed fragment, is collected as text.
        """
        value = _get(container, key)
        if not isinstance(value, str):
            if isinstance(value, (dict, list)):
                self.all_strings(container, key)
            return
        try:
            json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            self.text(container, key)
            return

        literals: list[tuple[int, int]] = []
        values: list[str] = []
        for match in _JSON_STRING_LITERAL.finditer(value):
            following = value[match.end() :].lstrip(_JSON_WHITESPACE)
            if following.startswith(":"):
                continue
            literals.append(match.span())
            values.append(_checked_text(json.loads(match.group())))
        if not literals:
            return
        self._collected.add((id(container), key))
        self.slots.append(
            _JsonTextSlot(container, key, value, literals, first_index=len(self.texts))
        )
        self.texts.extend(values)

    def all_strings(self, container: Any, key: str | int) -> None:
        """Collect every string value under container[key], but no keys."""
        value = _get(container, key)
        if isinstance(value, str):
            self.text(container, key)
        elif isinstance(value, dict):
            for child in value:
                self.all_strings(value, child)
        elif isinstance(value, list):
            for index in range(len(value)):
                self.all_strings(value, index)

    def _is_collected(self, container: Any, key: str | int) -> bool:
        return (id(container), key) in self._collected

    def generic(self, container: Any, key: str | int) -> None:
        """Collect strings under container[key], except structure and binary data."""
        value = _get(container, key)
        if isinstance(value, str):
            if not is_binary_data(value) and not self._is_collected(container, key):
                self.text(container, key)
        elif isinstance(value, dict):
            for child in value:
                if child not in STRUCTURAL_KEYS:
                    self.generic(value, child)
        elif isinstance(value, list):
            for index in range(len(value)):
                self.generic(value, index)

    def schema_descriptions(self, container: Any, key: str | int) -> None:
        """Collect every "description" string inside a JSON schema."""
        value = _get(container, key)
        if isinstance(value, dict):
            for child, item in value.items():
                if child == "description" and isinstance(item, str):
                    self.text(value, child)
                else:
                    self.schema_descriptions(value, child)
        elif isinstance(value, list):
            for index in range(len(value)):
                self.schema_descriptions(value, index)


def _get(container: Any, key: str | int) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    if isinstance(container, list) and isinstance(key, int) and key < len(container):
        return container[key]
    return None


def _items(container: Any, key: str) -> list[Any]:
    value = _get(container, key)
    return value if isinstance(value, list) else []


# OpenAI chat completions, also used for the message-like parts of other shapes.


def _openai_content(collector: _Collector, container: Any, key: str | int) -> None:
    """Collect message content: a string, a list of content parts, or null."""
    content = _get(container, key)
    if isinstance(content, str):
        collector.text(container, key)
    elif isinstance(content, list):
        for index in range(len(content)):
            _content_part(collector, content, index)
    elif isinstance(content, dict):
        collector.generic(container, key)


def _content_part(collector: _Collector, parts: list[Any], index: int) -> None:
    part = parts[index]
    if isinstance(part, str):
        collector.text(parts, index)
        return
    if not isinstance(part, dict):
        return
    part_type = part.get("type")
    if part_type in _BINARY_PART_TYPES:
        return
    if part_type in _TEXT_PART_KEYS:
        collector.text(part, _TEXT_PART_KEYS[part_type])
    else:
        collector.generic(parts, index)


def _openai_tool_calls(collector: _Collector, message: dict[str, Any]) -> None:
    for call in _items(message, "tool_calls"):
        function = _get(call, "function")
        if isinstance(function, dict):
            collector.json_text(function, "arguments")
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        collector.json_text(function_call, "arguments")


def _openai_message(collector: _Collector, message: Any) -> None:
    if not isinstance(message, dict):
        return
    _openai_content(collector, message, "content")
    for key in ("name", "refusal", "reasoning_content", "reasoning", "thinking"):
        collector.text(message, key)
    _openai_tool_calls(collector, message)


def _openai_tools(collector: _Collector, document: dict[str, Any]) -> None:
    """Collect descriptions of tool definitions, but not names or schema structure."""
    for tool in _items(document, "tools"):
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        definition = function if isinstance(function, dict) else tool
        collector.text(definition, "description")
        collector.schema_descriptions(definition, "parameters")
    for function in _items(document, "functions"):
        collector.text(function, "description")
        collector.schema_descriptions(function, "parameters")


def _openai_chat_request(collector: _Collector, document: dict[str, Any]) -> None:
    for message in _items(document, "messages"):
        _openai_message(collector, message)
    _openai_tools(collector, document)
    collector.text(document, "user")


def _openai_chat_response(collector: _Collector, document: dict[str, Any]) -> None:
    for choice in _items(document, "choices"):
        if not isinstance(choice, dict):
            continue
        _openai_message(collector, choice.get("message"))
        _openai_message(collector, choice.get("delta"))
        collector.text(choice, "text")


def _openai_completions_request(
    collector: _Collector, document: dict[str, Any]
) -> None:
    collector.texts_or_strings(document, "prompt")
    collector.text(document, "suffix")
    collector.text(document, "user")


def _openai_embeddings_request(collector: _Collector, document: dict[str, Any]) -> None:
    collector.texts_or_strings(document, "input")
    collector.text(document, "user")


# OpenAI Responses API


def _responses_item(collector: _Collector, items: list[Any], index: int) -> None:
    item = items[index]
    if isinstance(item, str):
        collector.text(items, index)
        return
    if not isinstance(item, dict):
        return
    item_type = item.get("type")
    if item_type in ("function_call", "custom_tool_call"):
        collector.json_text(item, "arguments")
        collector.text(item, "input")
    elif item_type in ("function_call_output", "custom_tool_call_output"):
        _openai_content(collector, item, "output")
    elif item_type == "reasoning":
        for key in ("summary", "content"):
            _openai_content(collector, item, key)
    elif item_type in (None, "message") or "role" in item:
        _openai_content(collector, item, "content")
    elif item_type in _BINARY_PART_TYPES:
        return
    else:
        collector.generic(items, index)


def _responses_request(collector: _Collector, document: dict[str, Any]) -> None:
    collector.text(document, "instructions")
    items = document.get("input")
    if isinstance(items, str):
        collector.text(document, "input")
    elif isinstance(items, list):
        for index in range(len(items)):
            _responses_item(collector, items, index)
    prompt = document.get("prompt")
    if isinstance(prompt, dict):
        variables = prompt.get("variables")
        if isinstance(variables, dict):
            for name in variables:
                _openai_content(collector, variables, name)
    _openai_tools(collector, document)
    collector.text(document, "user")


def _responses_response(collector: _Collector, document: dict[str, Any]) -> None:
    collector.text(document, "instructions")
    items = _items(document, "output")
    for index in range(len(items)):
        _responses_item(collector, items, index)
    collector.text(document, "output_text")


# Ollama


def _ollama_message(collector: _Collector, message: Any) -> None:
    if not isinstance(message, dict):
        return
    collector.text(message, "content")
    collector.text(message, "thinking")
    for call in _items(message, "tool_calls"):
        function = _get(call, "function")
        if isinstance(function, dict):
            collector.json_text(function, "arguments")


def _ollama_chat_request(collector: _Collector, document: dict[str, Any]) -> None:
    for message in _items(document, "messages"):
        _ollama_message(collector, message)
    _openai_tools(collector, document)


def _ollama_chat_response(collector: _Collector, document: dict[str, Any]) -> None:
    _ollama_message(collector, document.get("message"))


def _ollama_generate_request(collector: _Collector, document: dict[str, Any]) -> None:
    for key in ("system", "prompt", "suffix"):
        collector.text(document, key)


def _ollama_generate_response(collector: _Collector, document: dict[str, Any]) -> None:
    collector.text(document, "response")
    collector.text(document, "thinking")


def _ollama_embed_request(collector: _Collector, document: dict[str, Any]) -> None:
    collector.texts_or_strings(document, "input")
    collector.text(document, "prompt")


# Anthropic Messages


def _anthropic_content(collector: _Collector, container: Any, key: str | int) -> None:
    """Collect a string or a list of content blocks."""
    content = _get(container, key)
    if isinstance(content, str):
        collector.text(container, key)
    elif isinstance(content, list):
        for block in content:
            _anthropic_block(collector, block)


def _anthropic_block(collector: _Collector, block: Any) -> None:
    if not isinstance(block, dict):
        return
    block_type = block.get("type")
    if block_type == "text":
        collector.text(block, "text")
    elif block_type == "thinking":
        collector.text(block, "thinking")
    elif block_type in ("tool_use", "server_tool_use"):
        collector.all_strings(block, "input")
    elif block_type == "tool_result" or block_type == "search_result":
        _anthropic_content(collector, block, "content")
        collector.text(block, "title")
    elif block_type == "document":
        collector.text(block, "title")
        collector.text(block, "context")
        source = block.get("source")
        if isinstance(source, dict):
            if source.get("type") == "text":
                collector.text(source, "data")
            elif source.get("type") == "content":
                _anthropic_content(collector, source, "content")
    elif block_type in ("image", "redacted_thinking"):
        return
    else:
        for key in ("text", "content"):
            _anthropic_content(collector, block, key)


def _anthropic_system_and_messages(
    collector: _Collector, document: dict[str, Any]
) -> None:
    _anthropic_content(collector, document, "system")
    for message in _items(document, "messages"):
        _anthropic_content(collector, message, "content")


def _anthropic_request(collector: _Collector, document: dict[str, Any]) -> None:
    _anthropic_system_and_messages(collector, document)
    for tool in _items(document, "tools"):
        collector.text(tool, "description")
        collector.schema_descriptions(tool, "input_schema")


def _anthropic_response(collector: _Collector, document: dict[str, Any]) -> None:
    _anthropic_content(collector, document, "content")
    # Stream events carry a block or a delta. Both are handled here, so the
    # streaming side can reuse this walker per event.
    _anthropic_block(collector, document.get("content_block"))
    delta = document.get("delta")
    if isinstance(delta, dict):
        for key in ("text", "thinking", "partial_json"):
            collector.text(delta, key)


def _error_messages(collector: _Collector, document: dict[str, Any]) -> None:
    """Collect error messages in the formats of OpenAI, Anthropic, Ollama and vLLM."""
    error = document.get("error")
    if isinstance(error, str):
        collector.text(document, "error")
    elif isinstance(error, dict):
        collector.text(error, "message")
    if document.get("object") == "error" or document.get("type") == "error":
        collector.text(document, "message")
    collector.text(document, "detail")


_Walker = Callable[[_Collector, dict[str, Any]], None]

_REQUEST_WALKERS: dict[ApiShape, _Walker] = {
    ApiShape.OPENAI_CHAT: _openai_chat_request,
    ApiShape.OPENAI_COMPLETIONS: _openai_completions_request,
    ApiShape.OPENAI_EMBEDDINGS: _openai_embeddings_request,
    ApiShape.OPENAI_RESPONSES: _responses_request,
    ApiShape.OLLAMA_CHAT: _ollama_chat_request,
    ApiShape.OLLAMA_GENERATE: _ollama_generate_request,
    ApiShape.OLLAMA_EMBED: _ollama_embed_request,
    ApiShape.ANTHROPIC_MESSAGES: _anthropic_request,
}

# Top-level request keys that each walker reads itself, binary data included.
_REQUEST_CONTENT_KEYS: dict[ApiShape, frozenset[str]] = {
    ApiShape.OPENAI_CHAT: frozenset({"messages", "tools", "functions", "user"}),
    ApiShape.OPENAI_COMPLETIONS: frozenset({"prompt", "suffix", "user"}),
    ApiShape.OPENAI_EMBEDDINGS: frozenset({"input", "user"}),
    ApiShape.OPENAI_RESPONSES: frozenset(
        {"instructions", "input", "prompt", "tools", "user"}
    ),
    ApiShape.OLLAMA_CHAT: frozenset({"messages", "tools"}),
    ApiShape.OLLAMA_GENERATE: frozenset({"system", "prompt", "suffix"}),
    ApiShape.OLLAMA_EMBED: frozenset({"input", "prompt"}),
    ApiShape.ANTHROPIC_MESSAGES: frozenset({"system", "messages", "tools"}),
}

_RESPONSE_WALKERS: dict[ApiShape, _Walker] = {
    ApiShape.OPENAI_CHAT: _openai_chat_response,
    ApiShape.OPENAI_COMPLETIONS: _openai_chat_response,
    ApiShape.OPENAI_EMBEDDINGS: lambda collector, document: None,
    ApiShape.OPENAI_RESPONSES: _responses_response,
    ApiShape.OLLAMA_CHAT: _ollama_chat_response,
    ApiShape.OLLAMA_GENERATE: _ollama_generate_response,
    ApiShape.OLLAMA_EMBED: lambda collector, document: None,
    ApiShape.ANTHROPIC_MESSAGES: _anthropic_response,
}


def collect_request_texts(shape: ApiShape, body: bytes) -> ContentTexts:
    """Collect the content strings of a request body, or raise BodyError."""
    return _collect(shape, body, _REQUEST_WALKERS, "request")


def collect_response_texts(shape: ApiShape, body: bytes) -> ContentTexts:
    """Collect the content strings of a non-streamed response body or of one event.

    Error messages are collected for every shape.
    """
    return _collect(shape, body, _RESPONSE_WALKERS, "response")


def _collect(
    shape: ApiShape, body: bytes, walkers: dict[ApiShape, _Walker], side: str
) -> ContentTexts:
    if not body.strip():
        return ContentTexts(body, None, [], [])
    if shape is ApiShape.PLAIN_TEXT:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError(f"{side} body is not valid UTF-8 text") from None
        return ContentTexts(body, None, [text], [], plain_text=True)

    document = _parse_json(body, side)
    collector = _Collector()
    holder = [document]
    try:
        walker = walkers.get(shape)
        if walker is None or not isinstance(document, dict):
            collector.generic(holder, 0)
        else:
            walker(collector, document)
            if side == "response":
                _error_messages(collector, document)
            else:
                # Top-level fields the walker does not read (metadata, newer API
                # parameters) are scanned too. Detection leaves ordinary parameter
                # values such as "auto" as they are.
                for key in list(document):
                    if key not in _REQUEST_CONTENT_KEYS[shape] | STRUCTURAL_KEYS:
                        collector.generic(document, key)
    except RecursionError:
        raise BodyError(f"{side} body is nested too deeply to rewrite") from None
    return ContentTexts(body, holder, collector.texts, collector.slots)
