"""A deterministic text processor and stream drivers for the stream rewriter tests."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable

import pytest

from addons.streaming import StreamRewriter
from vault.tokens import DEFAULT_FORMAT

# Tokens as the vault issues them: serial plus Damm check digit.
ALICE_TOKEN = DEFAULT_FORMAT.format("PERSON", 1)
BRUNO_TOKEN = DEFAULT_FORMAT.format("PERSON", 2)
EMAIL_TOKEN = DEFAULT_FORMAT.format("EMAIL_ADDRESS", 1)
PHONE_TOKEN = DEFAULT_FORMAT.format("PHONE_NUMBER", 1)


class DictProcessor:
    """Text processor with fixed values instead of detection and a vault.

    `model_values` maps values the model may produce to their tokens; `entitled` maps
    tokens that the principal may see to their values. Restoring finds tokens
    leniently, like the real processor.
    """

    def __init__(
        self,
        model_values: dict[str, str] | None = None,
        entitled: dict[str, str] | None = None,
    ) -> None:
        self.model_values = model_values or {}
        self.entitled = entitled or {}
        self.restored = 0
        self.unrestored = 0
        self.counts: dict[str, int] = {}
        self.tokenize_calls: list[str] = []

    def tokenize(self, text: str) -> str:
        self.tokenize_calls.append(text)
        for value, token in self.model_values.items():
            occurrences = text.count(value)
            if occurrences:
                entity_type = DEFAULT_FORMAT.parse(token).entity_type
                self.counts[entity_type] = self.counts.get(entity_type, 0) + occurrences
                text = text.replace(value, token)
        return text

    def restore(self, text: str) -> str:
        pieces = []
        position = 0
        for match in DEFAULT_FORMAT.find(text, lenient=True):
            value = self.entitled.get(match.token) if match.valid else None
            if value is None:
                self.unrestored += 1
                continue
            self.restored += 1
            pieces.append(text[position : match.start])
            pieces.append(value)
            position = match.end
        pieces.append(text[position:])
        return "".join(pieces)


@pytest.fixture
def processor() -> DictProcessor:
    """Alice is the client's own value; the email is a value the model produced."""
    return DictProcessor(
        model_values={"bob@example.test": EMAIL_TOKEN, "555-0142": PHONE_TOKEN},
        entitled={ALICE_TOKEN: "Alice Novak"},
    )


def run_stream(
    rewriter: StreamRewriter, chunks: Iterable[bytes]
) -> tuple[bytes, bytes]:
    """Feed `chunks`, then finish; return what the client got and the recording."""
    client = b"".join(rewriter.feed(chunk) for chunk in chunks)
    client += rewriter.finish()
    return client, bytes(rewriter.recorded)


def byte_chunks(data: bytes) -> list[bytes]:
    return [data[position : position + 1] for position in range(len(data))]


def random_chunks(data: bytes, seed: int) -> list[bytes]:
    generator = random.Random(seed)
    chunks = []
    position = 0
    while position < len(data):
        size = generator.randint(1, 24)
        chunks.append(data[position : position + size])
        position += size
    return chunks


def sse(*payloads: str, line_end: str = "\n") -> bytes:
    """Return data-only SSE events for `payloads`."""
    return "".join(
        f"data: {payload}{line_end}{line_end}" for payload in payloads
    ).encode()


def compact(document: object) -> str:
    """Serialize like the rewriter does, so expected events match byte for byte."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def chat_chunk(
    content: str | None = None,
    *,
    index: int = 0,
    finish_reason: str | None = None,
    tool_calls: list[dict[str, object]] | None = None,
) -> str:
    """Return an OpenAI chat completion chunk with one choice."""
    delta: dict[str, object] = {}
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return compact(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "m",
            "choices": [
                {"index": index, "delta": delta, "finish_reason": finish_reason}
            ],
        }
    )
