"""Rewriting of streamed model responses (SSE and NDJSON) while they stream.

`rewriter_for` returns a rewriter for a response content type. The gateway calls
`feed` for every raw chunk and `finish` once at the end of the stream. Both return the
bytes to send to the client now. `recorded` collects the same stream with model produced
values tokenized and nothing restored, because a recording must not contain values.

Chunks may split events, lines and UTF-8 sequences anywhere; lines may end in CRLF, LF
or CR. A complete event is rewritten as soon as its last line arrives, so the stream
stays a stream. Which text is held back per channel is described in
`addons.streaming_text`, and which fields are channels in `addons.streaming_events`.

Failure handling: `feed` and `finish` do not raise for any input or processor error.
When the text processor raises, an event is not valid UTF-8, or an event exceeds
`MAX_EVENT_BYTES`, the rewriter sends one error event in the API's format, records it,
keeps the failure in `error` and drops the rest of the stream. Held text is never
released unprocessed. A data payload that is not JSON is tokenized and restored as text
rather than passed on. `StreamError` is raised only when `feed` or `finish` is called
after `finish`.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Protocol

from addons.shapes import ApiShape
from addons.streaming_events import EventRewriter, OutputEvent, event_rewriter_for
from vault.tokens import DEFAULT_FORMAT, TokenFormat

if TYPE_CHECKING:
    from addons.pipeline import TextProcessor

__all__ = [
    "MAX_EVENT_BYTES",
    "NdjsonRewriter",
    "SseRewriter",
    "StreamError",
    "StreamRewriter",
    "rewriter_for",
]

logger = logging.getLogger(__name__)

MAX_EVENT_BYTES = 8 * 1024 * 1024
"""Maximum size of one SSE event or NDJSON line, in bytes."""

SSE_MEDIA_TYPE = "text/event-stream"
NDJSON_MEDIA_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)

_LINE_END = re.compile(rb"\r\n|\r|\n")
_UTF8_BOM = b"\xef\xbb\xbf"
_DONE_PAYLOAD = "[DONE]"


class StreamError(Exception):
    """A stream that could not be rewritten, so its rest must not reach the client.

    The message names the cause and never contains stream content.
    """


class StreamRewriter(Protocol):
    """Incremental rewriter of one response stream."""

    recorded: bytearray

    def feed(self, chunk: bytes) -> bytes:
        """Return the bytes to send for `chunk`, or b"" when nothing is ready yet."""
        ...

    def finish(self) -> bytes:
        """Return the bytes still held, at the end of the stream."""
        ...


def rewriter_for(
    shape: ApiShape,
    content_type: str,
    processor: TextProcessor,
    *,
    token_format: TokenFormat = DEFAULT_FORMAT,
    min_release_chars: int = 0,
) -> StreamRewriter | None:
    """Return a rewriter for a streamed response body, or None for other media types.

    `text/event-stream` gets an SSE rewriter and the NDJSON media types an NDJSON
    rewriter. `shape` selects which fields carry text. A `min_release_chars` above 0
    batches the text of each channel after its first release into pieces of at least
    that many characters, which cuts detection calls per stream and adds latency.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == SSE_MEDIA_TYPE:
        framing: type[SseRewriter] | type[NdjsonRewriter] = SseRewriter
    elif media_type in NDJSON_MEDIA_TYPES:
        framing = NdjsonRewriter
    else:
        return None
    events = event_rewriter_for(
        shape, processor, token_format, min_release_chars=min_release_chars
    )
    return framing(events)


class _LineStreamRewriter:
    """Splitting into lines, failure handling and output collection."""

    def __init__(self, events: EventRewriter) -> None:
        self.events = events
        self.recorded = bytearray()
        self.error: StreamError | None = None
        self._buffer = bytearray()
        # Offset in the buffer before which no line end remains to be found.
        self._scanned = 0
        self._line_end = b"\n"
        self._line_end_seen = False
        self._at_start = True
        self._finished = False
        self._client = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        """Rewrite the complete events in `chunk` and keep the incomplete rest."""
        if self._finished:
            raise StreamError("feed() was called after finish()")
        if self.error is not None:
            return b""
        try:
            self._buffer += chunk
            self._read_lines(final=False)
            if len(self._buffer) > MAX_EVENT_BYTES:
                raise StreamError(
                    f"a stream line exceeds the limit of {MAX_EVENT_BYTES} bytes"
                )
        except Exception as error:  # noqa: BLE001 - any failure must fail closed
            self._fail(error)
        return self._take_output()

    def finish(self) -> bytes:
        """Rewrite what is left and flush every channel."""
        if self._finished:
            raise StreamError("finish() was called twice")
        self._finished = True
        if self.error is not None:
            return b""
        try:
            self._read_lines(final=True)
            self._end_of_stream()
            self._emit_events(self.events.finish())
        except Exception as error:  # noqa: BLE001 - any failure must fail closed
            self._fail(error)
        return self._take_output()

    def _read_lines(self, final: bool) -> None:
        if self._at_start:
            if len(self._buffer) < len(_UTF8_BOM) and not final:
                if _UTF8_BOM.startswith(bytes(self._buffer)):
                    return
            if self._buffer.startswith(_UTF8_BOM):
                del self._buffer[: len(_UTF8_BOM)]
            self._at_start = False

        position = 0
        while True:
            match = _LINE_END.search(self._buffer, max(position, self._scanned))
            if match is None:
                break
            if (
                match.group() == b"\r"
                and match.end() == len(self._buffer)
                and not final
            ):
                break  # a "\n" may follow in the next chunk
            line_end = match.group()
            if not self._line_end_seen:
                self._line_end, self._line_end_seen = line_end, True
            self._on_line(bytes(self._buffer[position : match.start()]), line_end)
            position = match.end()
        del self._buffer[:position]
        # Scanning resumes at the last byte, a "\r" that may start a "\r\n".
        self._scanned = max(0, len(self._buffer) - 1)

        if final and self._buffer:
            rest = bytes(self._buffer)
            self._buffer.clear()
            self._on_line(rest, b"")

    def _on_line(self, line: bytes, line_end: bytes) -> None:
        raise NotImplementedError

    def _end_of_stream(self) -> None:
        """Rewrite an event that the stream left unterminated."""

    def _emit_events(self, events: list[OutputEvent]) -> None:
        raise NotImplementedError

    def _send(self, client: bytes, recorded: bytes) -> None:
        self._client += client
        self.recorded += recorded

    def _take_output(self) -> bytes:
        output = bytes(self._client)
        self._client.clear()
        return output

    def _fail(self, error: Exception) -> None:
        if isinstance(error, StreamError):
            self.error = error
        else:
            self.error = StreamError(
                f"rewriting the response stream failed with {type(error).__name__}"
            )
        # The exception text may quote stream content, so only its type is logged.
        logger.error("%s, so the rest of the stream is dropped", self.error)
        self._buffer.clear()
        self._emit_events(
            [self.events.error_payload(f"tokengate: {self.error}; response truncated")]
        )


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise StreamError("the response stream is not valid UTF-8") from None


class SseRewriter(_LineStreamRewriter):
    """Rewriter of a ``text/event-stream`` body.

    Lines are collected until the blank line that ends an event. An event without a
    data field (a comment such as ``: ping``, or only ``event:``, ``id:`` and
    ``retry:``) passes byte for byte, and so does an event whose payload did not change.
    A rewritten event keeps its other lines and line endings and carries the new
    payload in one data line per line of payload.
    """

    def __init__(self, events: EventRewriter) -> None:
        super().__init__(events)
        self._lines: list[tuple[bytes, bytes]] = []
        self._event_bytes = 0

    def _on_line(self, line: bytes, line_end: bytes) -> None:
        if line:
            self._event_bytes += len(line) + len(line_end)
            if self._event_bytes > MAX_EVENT_BYTES:
                raise StreamError(
                    f"a stream event exceeds the limit of {MAX_EVENT_BYTES} bytes"
                )
            self._lines.append((line, line_end))
            return
        if not line_end:
            return
        lines, self._lines, self._event_bytes = self._lines, [], 0
        self._rewrite_event(lines, line_end)

    def _end_of_stream(self) -> None:
        if self._lines:
            lines, self._lines, self._event_bytes = self._lines, [], 0
            last_line, last_end = lines[-1]
            lines[-1] = (last_line, last_end or self._line_end)
            self._rewrite_event(lines, self._line_end)

    def _rewrite_event(
        self, lines: list[tuple[bytes, bytes]], blank_end: bytes
    ) -> None:
        original = b"".join(line + end for line, end in lines) + blank_end
        data: list[str] = []
        for line, _ in lines:
            name, value = _field(_decode(line))
            if name == "data":
                data.append(value)
        if not data:
            self._send(original, original)
            return

        payload = "\n".join(data)
        if payload.strip() == _DONE_PAYLOAD:
            self._emit_events(self.events.finish())
            self._send(original, original)
            return

        rewrite = self.events.rewrite(payload)
        self._emit_events(rewrite.before)
        if rewrite.client is None or rewrite.recorded is None:
            self._send(original, original)
            return
        self._send(
            _replace_data(lines, rewrite.client) + blank_end,
            _replace_data(lines, rewrite.recorded) + blank_end,
        )

    def _emit_events(self, events: list[OutputEvent]) -> None:
        for event in events:
            self._send(
                self._format(event.name, event.client),
                self._format(event.name, event.recorded),
            )

    def _format(self, name: str | None, payload: str) -> bytes:
        lines = []
        if name is not None:
            lines.append(f"event: {name}".encode())
        lines.extend(_data_lines(payload))
        return b"".join(line + self._line_end for line in lines) + self._line_end


def _field(line: str) -> tuple[str, str]:
    """Split an SSE line into field name and value. A comment has the name ""."""
    if line.startswith(":"):
        return "", line[1:]
    name, colon, value = line.partition(":")
    if colon and value.startswith(" "):
        value = value[1:]
    return name, value


def _data_lines(payload: str) -> list[bytes]:
    # A payload with line breaks (restored text of a non-JSON event) needs one data
    # field per line, or the breaks would end the event.
    return [f"data: {part}".encode() for part in _split_lines(payload)]


def _split_lines(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text)


def _replace_data(lines: list[tuple[bytes, bytes]], payload: str) -> bytes:
    """Return the event lines with the data lines replaced by `payload`."""
    output = bytearray()
    replaced = False
    for line, end in lines:
        if not line.startswith(b"data"):
            output += line + end
            continue
        if _field(line.decode("utf-8"))[0] != "data":
            output += line + end
            continue
        if not replaced:
            for data_line in _data_lines(payload):
                output += data_line + end
            replaced = True
    return bytes(output)


class NdjsonRewriter(_LineStreamRewriter):
    """Rewriter of a newline-delimited JSON body such as Ollama's streams."""

    def _on_line(self, line: bytes, line_end: bytes) -> None:
        if len(line) > MAX_EVENT_BYTES:
            raise StreamError(
                f"a stream line exceeds the limit of {MAX_EVENT_BYTES} bytes"
            )
        text = _decode(line)
        original = line + (line_end or self._line_end)
        if not text.strip():
            self._send(original, original)
            return
        rewrite = self.events.rewrite(text)
        self._emit_events(rewrite.before)
        if rewrite.client is None or rewrite.recorded is None:
            self._send(original, original)
            return
        end = line_end or self._line_end
        self._send(
            _ndjson_line(rewrite.client) + end, _ndjson_line(rewrite.recorded) + end
        )

    def _emit_events(self, events: list[OutputEvent]) -> None:
        for event in events:
            self._send(
                _ndjson_line(event.client) + self._line_end,
                _ndjson_line(event.recorded) + self._line_end,
            )


def _ndjson_line(payload: str) -> bytes:
    # NOTE: a non-JSON line whose restored text has line breaks is joined with
    # spaces, because a break would split it into several lines.
    return " ".join(_split_lines(payload)).encode("utf-8")
