"""Rewriting of single stream events by API shape.

An event rewriter gets the payload of one event, which is an SSE data field or an
NDJSON line. It returns the payload that the client and the recording get instead, with
the released text of each channel in place of the original fragment. It also returns the
events to insert before it when held text must be flushed. Fields other than the text
fields keep their values, but a rewritten payload is re-serialized compactly.

Channels and where they are flushed:

* OpenAI chat completions: ``choices[i].delta`` content, reasoning and refusal text,
  and ``tool_calls[j].function.arguments`` per tool index. Flushed into the delta of
  the event with a non-null ``finish_reason`` for that choice.
* OpenAI completions: ``choices[i].text``, flushed the same way.
* Anthropic Messages: ``text_delta.text``, ``input_json_delta.partial_json`` and
  ``thinking_delta.thinking`` per content block index. Flushed as an inserted
  ``content_block_delta`` event before ``content_block_stop``, ``message_delta`` or
  ``message_stop``.
* Ollama chat and generate: ``message.content``, ``message.thinking``, ``response``
  and ``thinking``. Flushed into the event with ``done: true``.

`finish` flushes every channel still open, for the ``[DONE]`` event and the end of the
stream. Payloads that are not JSON objects are tokenized and restored as whole texts.
Events of other shapes go through the pipeline's per-body text collection, one event
at a time, without holding anything back between events.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from addons.shapes import ApiShape, BodyError, collect_response_texts
from addons.streaming_text import (
    NOTHING_RELEASED,
    ReleasedText,
    TextChannel,
    process_whole,
)
from vault.tokens import TokenFormat

if TYPE_CHECKING:
    from addons.pipeline import TextProcessor

_DELETE = object()
"""Edit value that removes the key from its container."""

_OPENAI_DELTA_TEXT_KEYS = ("content", "reasoning_content", "reasoning", "refusal")
_OLLAMA_TEXT_KEYS = ("content", "thinking")
# Anthropic delta types that carry text, and the key that contains the text.
_ANTHROPIC_DELTA_KEYS = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
}
_ANTHROPIC_BLOCK_DELTA_TYPES = {
    "text": "text_delta",
    "tool_use": "input_json_delta",
    "server_tool_use": "input_json_delta",
    "thinking": "thinking_delta",
}
# Fields of the latest chunk copied into inserted OpenAI events.
_OPENAI_TEMPLATE_KEYS = ("id", "object", "created", "model", "system_fingerprint")
_OLLAMA_TEMPLATE_KEYS = ("model", "created_at")


@dataclass(frozen=True)
class OutputEvent:
    """One event as sent to the client and as recorded.

    `name` is the SSE event type of an inserted event, None for a data-only event.
    """

    client: str
    recorded: str
    name: str | None = None


@dataclass
class PayloadRewrite:
    """Replacement of one incoming event.

    `client` and `recorded` are None when the payload passes unchanged.
    """

    before: list[OutputEvent] = field(default_factory=list)
    client: str | None = None
    recorded: str | None = None


@dataclass
class _Edit:
    container: dict[str, Any] | list[Any]
    key: str | int
    client: Any
    recorded: Any


def _serialize(document: Any) -> str:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from a "\ud800" escape has no UTF-8 form, so escape all.
        return json.dumps(document, separators=(",", ":"))
    return text


def _render(document: Any, edits: list[_Edit]) -> tuple[str, str]:
    """Serialize `document` once with the client values and once with the recorded."""
    for edit in edits:
        _apply(edit.container, edit.key, edit.client)
    client = _serialize(document)
    for edit in edits:
        _apply(edit.container, edit.key, edit.recorded)
    return client, _serialize(document)


def _leaves_value(edit: _Edit) -> bool:
    """Tell whether `edit` writes the value that its field already has."""
    if edit.client is _DELETE or edit.client != edit.recorded:
        return False
    if isinstance(edit.container, dict):
        return edit.key in edit.container and edit.container[edit.key] == edit.client
    return edit.container[edit.key] == edit.client


def _apply(container: Any, key: str | int, value: Any) -> None:
    if value is _DELETE:
        if isinstance(container, dict):
            container.pop(key, None)
        return
    container[key] = value


class EventRewriter:
    """Base of the shape-specific rewriters: parsing, text fallback and channels."""

    min_release_chars = 0
    """Minimum length of a release after a channel's first one, see `TextChannel`."""

    def __init__(self, processor: TextProcessor, token_format: TokenFormat) -> None:
        self.processor = processor
        self.token_format = token_format
        self._channels: dict[Hashable, TextChannel] = {}

    def rewrite(self, payload: str) -> PayloadRewrite:
        """Return the replacement of one event payload."""
        try:
            document = json.loads(payload)
        except (json.JSONDecodeError, RecursionError):
            document = None
        if not isinstance(document, dict):
            return self._rewrite_text(payload)

        before: list[OutputEvent] = []
        edits: list[_Edit] = []
        self._rewrite_document(document, edits, before)
        if all(_leaves_value(edit) for edit in edits):
            # Keep the original bytes of an event whose text passed unchanged.
            return PayloadRewrite(before=before)
        client, recorded = _render(document, edits)
        return PayloadRewrite(before=before, client=client, recorded=recorded)

    def finish(self) -> list[OutputEvent]:
        """Flush every open channel into inserted events."""
        return []

    def _rewrite_text(self, payload: str) -> PayloadRewrite:
        # NOTE: a payload that is not a JSON object is processed on its own, so a
        # token or a value split across two such payloads is not joined.
        released = process_whole(self.processor, payload)
        if released.client == payload and released.recorded == payload:
            return PayloadRewrite()
        return PayloadRewrite(client=released.client, recorded=released.recorded)

    def error_payload(self, message: str) -> OutputEvent:
        """Return an error event in this API's format."""
        payload = _serialize(
            {
                "error": {
                    "message": message,
                    "type": "tokengate_error",
                    "code": "stream_rewrite_failed",
                }
            }
        )
        return OutputEvent(payload, payload)

    def _rewrite_document(
        self, document: dict[str, Any], edits: list[_Edit], before: list[OutputEvent]
    ) -> None:
        raise NotImplementedError

    def _channel(self, key: Hashable, *, json_fragment: bool = False) -> TextChannel:
        channel = self._channels.get(key)
        if channel is None:
            channel = TextChannel(
                self.processor,
                self.token_format,
                json_fragment=json_fragment,
                min_release_chars=self.min_release_chars,
            )
            self._channels[key] = channel
        return channel

    def _flush(self, key: Hashable) -> ReleasedText:
        channel = self._channels.pop(key, None)
        if channel is None:
            return NOTHING_RELEASED
        return channel.flush()

    def _rewrite_error(self, document: dict[str, Any], edits: list[_Edit]) -> None:
        """Process an error message as a whole text, because it may quote content."""
        error = document.get("error")
        if isinstance(error, str):
            self._whole_text(document, "error", edits)
        elif isinstance(error, dict):
            self._whole_text(error, "message", edits)

    def _whole_text(
        self, container: dict[str, Any], key: str, edits: list[_Edit]
    ) -> None:
        value = container.get(key)
        if isinstance(value, str) and value:
            released = process_whole(self.processor, value)
            edits.append(_Edit(container, key, released.client, released.recorded))


def _index_of(item: dict[str, Any], position: int) -> Hashable:
    index = item.get("index", position)
    return index if isinstance(index, (int, str)) else position


def _template(latest: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: latest[key] for key in keys if key in latest}


class _OpenAIEvents(EventRewriter):
    """Shared handling of OpenAI stream chunks: errors and the list of choices."""

    def __init__(self, processor: TextProcessor, token_format: TokenFormat) -> None:
        super().__init__(processor, token_format)
        self._latest: dict[str, Any] = {}

    def _rewrite_document(
        self, document: dict[str, Any], edits: list[_Edit], before: list[OutputEvent]
    ) -> None:
        self._latest = _template(document, _OPENAI_TEMPLATE_KEYS)
        self._rewrite_error(document, edits)
        choices = document.get("choices")
        if not isinstance(choices, list):
            return
        for position, choice in enumerate(choices):
            if isinstance(choice, dict):
                self._rewrite_choice(_index_of(choice, position), choice, edits)

    def _rewrite_choice(
        self, index: Hashable, choice: dict[str, Any], edits: list[_Edit]
    ) -> None:
        raise NotImplementedError


class OpenAIChatEvents(_OpenAIEvents):
    """Chunks of ``/v1/chat/completions`` with ``stream: true``."""

    def _rewrite_choice(
        self, index: Hashable, choice: dict[str, Any], edits: list[_Edit]
    ) -> None:
        # NOTE: log probabilities carry raw text pieces that cannot follow the
        # rewritten text, so they are removed.
        if choice.get("logprobs") is not None:
            edits.append(_Edit(choice, "logprobs", None, None))

        released: dict[Hashable, _Edit] = {}
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key in _OPENAI_DELTA_TEXT_KEYS:
                value = delta.get(key)
                if isinstance(value, str):
                    text = self._channel((index, key)).push(value)
                    released[(index, key)] = _Edit(
                        delta, key, text.client, text.recorded
                    )
            self._push_tool_calls(index, delta, released)

        if choice.get("finish_reason") is not None:
            for key in [key for key in self._channels if key[0] == index]:
                tail = self._flush(key)
                if tail == NOTHING_RELEASED:
                    continue
                edit = released.get(key) or self._new_slot(choice, key)
                edit.client += tail.client
                edit.recorded += tail.recorded
                released[key] = edit
        edits.extend(released.values())

    def _push_tool_calls(
        self, index: Hashable, delta: dict[str, Any], released: dict[Hashable, _Edit]
    ) -> None:
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list):
            for position, call in enumerate(tool_calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    continue
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    key = (index, "tool_calls", _index_of(call, position))
                    text = self._channel(key, json_fragment=True).push(arguments)
                    released[key] = _Edit(
                        function, "arguments", text.client, text.recorded
                    )
        function_call = delta.get("function_call")
        if isinstance(function_call, dict):
            arguments = function_call.get("arguments")
            if isinstance(arguments, str):
                key = (index, "function_call")
                text = self._channel(key, json_fragment=True).push(arguments)
                released[key] = _Edit(
                    function_call, "arguments", text.client, text.recorded
                )

    @staticmethod
    def _new_slot(choice: dict[str, Any], key: tuple[Any, ...]) -> _Edit:
        """Add an empty text field for a channel to the delta of `choice`."""
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = {}
            choice["delta"] = delta
        if key[1] == "tool_calls":
            function = {"arguments": ""}
            tool_calls = delta.get("tool_calls")
            if not isinstance(tool_calls, list):
                tool_calls = []
                delta["tool_calls"] = tool_calls
            tool_calls.append({"index": key[2], "function": function})
            return _Edit(function, "arguments", "", "")
        if key[1] == "function_call":
            function_call = {"arguments": ""}
            delta["function_call"] = function_call
            return _Edit(function_call, "arguments", "", "")
        return _Edit(delta, key[1], "", "")

    def finish(self) -> list[OutputEvent]:
        events = []
        for index in dict.fromkeys(key[0] for key in self._channels):
            choice: dict[str, Any] = {
                "index": index,
                "delta": {},
                "finish_reason": None,
            }
            edits = []
            for key in [key for key in self._channels if key[0] == index]:
                tail = self._flush(key)
                if tail == NOTHING_RELEASED:
                    continue
                edit = self._new_slot(choice, key)
                edit.client, edit.recorded = tail.client, tail.recorded
                edits.append(edit)
            if edits:
                document = {**self._latest, "choices": [choice]}
                events.append(OutputEvent(*_render(document, edits)))
        return events


class OpenAICompletionEvents(_OpenAIEvents):
    """Chunks of the legacy ``/v1/completions`` with ``stream: true``."""

    def _rewrite_choice(
        self, index: Hashable, choice: dict[str, Any], edits: list[_Edit]
    ) -> None:
        if choice.get("logprobs") is not None:
            edits.append(_Edit(choice, "logprobs", None, None))
        text = choice.get("text")
        released = NOTHING_RELEASED
        if isinstance(text, str):
            released = self._channel(index).push(text)
        if choice.get("finish_reason") is not None:
            released += self._flush(index)
        if isinstance(text, str) or released != NOTHING_RELEASED:
            edits.append(_Edit(choice, "text", released.client, released.recorded))

    def finish(self) -> list[OutputEvent]:
        events = []
        for index in list(self._channels):
            tail = self._flush(index)
            if tail == NOTHING_RELEASED:
                continue
            choice = {
                "index": index,
                "text": "",
                "logprobs": None,
                "finish_reason": None,
            }
            document = {**self._latest, "choices": [choice]}
            edits = [_Edit(choice, "text", tail.client, tail.recorded)]
            events.append(OutputEvent(*_render(document, edits)))
        return events


class AnthropicEvents(EventRewriter):
    """Events of the Anthropic Messages API with ``stream: true``."""

    def __init__(self, processor: TextProcessor, token_format: TokenFormat) -> None:
        super().__init__(processor, token_format)
        self._delta_types: dict[Hashable, str] = {}

    def _rewrite_document(
        self, document: dict[str, Any], edits: list[_Edit], before: list[OutputEvent]
    ) -> None:
        event_type = document.get("type")
        index = _index_of(document, 0)
        if event_type == "content_block_start":
            self._start_block(index, document.get("content_block"), edits)
        elif event_type == "content_block_delta":
            self._block_delta(index, document.get("delta"), edits)
        elif event_type == "content_block_stop":
            before.extend(self._flush_blocks([index]))
        elif event_type in ("message_delta", "message_stop"):
            before.extend(self.finish())
        elif event_type == "error":
            self._rewrite_error(document, edits)

    def _start_block(self, index: Hashable, block: Any, edits: list[_Edit]) -> None:
        if not isinstance(block, dict):
            return
        delta_type = _ANTHROPIC_BLOCK_DELTA_TYPES.get(block.get("type"))
        if delta_type is None:
            return
        self._delta_types[index] = delta_type
        key = _ANTHROPIC_DELTA_KEYS[delta_type]
        value = block.get(key)
        if isinstance(value, str) and value:
            text = self._block_channel(index, delta_type).push(value)
            edits.append(_Edit(block, key, text.client, text.recorded))

    def _block_delta(self, index: Hashable, delta: Any, edits: list[_Edit]) -> None:
        if not isinstance(delta, dict):
            return
        delta_type = delta.get("type")
        key = _ANTHROPIC_DELTA_KEYS.get(delta_type)
        value = delta.get(key) if key else None
        if not isinstance(value, str):
            return
        self._delta_types[index] = delta_type
        text = self._block_channel(index, delta_type).push(value)
        edits.append(_Edit(delta, key, text.client, text.recorded))

    def _block_channel(self, index: Hashable, delta_type: str) -> TextChannel:
        return self._channel(index, json_fragment=delta_type == "input_json_delta")

    def _flush_blocks(self, indexes: list[Hashable]) -> list[OutputEvent]:
        events = []
        for index in indexes:
            tail = self._flush(index)
            delta_type = self._delta_types.pop(index, "text_delta")
            if tail == NOTHING_RELEASED:
                continue
            key = _ANTHROPIC_DELTA_KEYS[delta_type]
            delta = {"type": delta_type, key: ""}
            document = {"type": "content_block_delta", "index": index, "delta": delta}
            client, recorded = _render(
                document, [_Edit(delta, key, tail.client, tail.recorded)]
            )
            events.append(OutputEvent(client, recorded, name="content_block_delta"))
        return events

    def finish(self) -> list[OutputEvent]:
        return self._flush_blocks(list(self._channels))

    def error_payload(self, message: str) -> OutputEvent:
        payload = _serialize(
            {"type": "error", "error": {"type": "api_error", "message": message}}
        )
        return OutputEvent(payload, payload, name="error")


class OllamaEvents(EventRewriter):
    """Lines of Ollama's ``/api/chat`` and ``/api/generate`` streams."""

    def __init__(self, processor: TextProcessor, token_format: TokenFormat) -> None:
        super().__init__(processor, token_format)
        self._latest: dict[str, Any] = {}
        self._chat = False

    def _rewrite_document(
        self, document: dict[str, Any], edits: list[_Edit], before: list[OutputEvent]
    ) -> None:
        self._latest = _template(document, _OLLAMA_TEMPLATE_KEYS)
        self._rewrite_error(document, edits)
        released: dict[Hashable, _Edit] = {}

        message = document.get("message")
        if isinstance(message, dict):
            self._chat = True
            for key in _OLLAMA_TEXT_KEYS:
                self._push(("message", key), message, key, released)
            self._rewrite_tool_calls(message, edits)
        self._push(("response",), document, "response", released)
        if not isinstance(message, dict):
            self._push(("thinking",), document, "thinking", released)

        if document.get("done") is True:
            for key in list(self._channels):
                tail = self._flush(key)
                if tail == NOTHING_RELEASED:
                    continue
                edit = released.get(key) or self._new_slot(document, key)
                edit.client += tail.client
                edit.recorded += tail.recorded
                released[key] = edit
            # NOTE: the "context" array of /api/generate encodes the conversation,
            # raw model output included, as model token ids, so it is removed.
            if "context" in document:
                edits.append(_Edit(document, "context", _DELETE, _DELETE))
        edits.extend(released.values())

    def _push(
        self,
        key: tuple[str, ...],
        container: dict[str, Any],
        field_name: str,
        released: dict[Hashable, _Edit],
    ) -> None:
        value = container.get(field_name)
        if isinstance(value, str):
            text = self._channel(key).push(value)
            released[key] = _Edit(container, field_name, text.client, text.recorded)

    def _rewrite_tool_calls(self, message: dict[str, Any], edits: list[_Edit]) -> None:
        """Process the string values of tool arguments, which arrive whole."""
        tool_calls = message.get("tool_calls")
        if not isinstance(tool_calls, list):
            return
        for call in tool_calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or "arguments" not in function:
                continue
            arguments = function["arguments"]
            if isinstance(arguments, str):
                # Arguments serialized as JSON text need restored values escaped.
                channel = TextChannel(
                    self.processor, self.token_format, json_fragment=True
                )
                released = channel.push(arguments) + channel.flush()
                edits.append(
                    _Edit(function, "arguments", released.client, released.recorded)
                )
            else:
                self._rewrite_strings(function, "arguments", edits)

    def _rewrite_strings(
        self, container: Any, key: str | int, edits: list[_Edit]
    ) -> None:
        value = container[key]
        if isinstance(value, str):
            released = process_whole(self.processor, value)
            edits.append(_Edit(container, key, released.client, released.recorded))
        elif isinstance(value, dict):
            for child in value:
                self._rewrite_strings(value, child, edits)
        elif isinstance(value, list):
            for position in range(len(value)):
                self._rewrite_strings(value, position, edits)

    @staticmethod
    def _new_slot(document: dict[str, Any], key: tuple[str, ...]) -> _Edit:
        if key[0] == "message":
            message = document.get("message")
            if not isinstance(message, dict):
                message = {"role": "assistant"}
                document["message"] = message
            return _Edit(message, key[1], "", "")
        return _Edit(document, key[0], "", "")

    def finish(self) -> list[OutputEvent]:
        edits = []
        document: dict[str, Any] = dict(self._latest)
        if self._chat:
            document["message"] = {"role": "assistant", "content": ""}
        for key in list(self._channels):
            tail = self._flush(key)
            if tail == NOTHING_RELEASED:
                continue
            edit = self._new_slot(document, key)
            edit.client, edit.recorded = tail.client, tail.recorded
            edits.append(edit)
        if not edits:
            return []
        document["done"] = False
        return [OutputEvent(*_render(document, edits))]

    def error_payload(self, message: str) -> OutputEvent:
        payload = _serialize({"error": message})
        return OutputEvent(payload, payload)


class GenericEvents(EventRewriter):
    """Events of other shapes: each event's content texts are processed on their own.

    NOTE: nothing is held back between events here, so a token split across two events
    is not restored and a value split across two events may not be detected.
    """

    def __init__(
        self, processor: TextProcessor, token_format: TokenFormat, shape: ApiShape
    ) -> None:
        super().__init__(processor, token_format)
        # Stream events rarely look like the shape's whole body, so every string that
        # is not structure counts as content.
        self._shape = (
            ApiShape.GENERIC_JSON if shape is not ApiShape.PLAIN_TEXT else shape
        )

    def rewrite(self, payload: str) -> PayloadRewrite:
        try:
            texts = collect_response_texts(self._shape, payload.encode("utf-8"))
        except BodyError:
            return self._rewrite_text(payload)
        released = [process_whole(self.processor, text) for text in texts.texts]
        client = texts.render([text.client for text in released])
        recorded = texts.render([text.recorded for text in released])
        if client == texts.body and recorded == texts.body:
            return PayloadRewrite()
        return PayloadRewrite(
            client=client.decode("utf-8"), recorded=recorded.decode("utf-8")
        )


def event_rewriter_for(
    shape: ApiShape,
    processor: TextProcessor,
    token_format: TokenFormat,
    *,
    min_release_chars: int = 0,
) -> EventRewriter:
    """Return the event rewriter for streams of `shape`."""
    rewriter: EventRewriter
    if shape is ApiShape.OPENAI_CHAT:
        rewriter = OpenAIChatEvents(processor, token_format)
    elif shape is ApiShape.OPENAI_COMPLETIONS:
        rewriter = OpenAICompletionEvents(processor, token_format)
    elif shape is ApiShape.ANTHROPIC_MESSAGES:
        rewriter = AnthropicEvents(processor, token_format)
    elif shape in (ApiShape.OLLAMA_CHAT, ApiShape.OLLAMA_GENERATE):
        rewriter = OllamaEvents(processor, token_format)
    else:
        rewriter = GenericEvents(processor, token_format, shape)
    rewriter.min_release_chars = min_release_chars
    return rewriter
