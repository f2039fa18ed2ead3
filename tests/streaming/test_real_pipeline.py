"""Streams through the real Pipeline, Vault and Detector."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from addons.detection import Detector
from addons.pipeline import Pipeline
from addons.shapes import ApiShape
from addons.streaming import rewriter_for
from vault import Vault
from vault.tokens import DEFAULT_FORMAT

from .conftest import byte_chunks, chat_chunk, random_chunks, run_stream, sse

NAMESPACE = "ns-stream"
PRINCIPAL = "alice-laptop"
ALICE = DEFAULT_FORMAT.format("PERSON", 1)
BRUNO = DEFAULT_FORMAT.format("PERSON", 2)


@pytest.fixture(scope="session")
def detector() -> Detector:
    return Detector()


@pytest.fixture
def pipeline(detector: Detector, tmp_path: Path) -> Iterator[Pipeline]:
    vault = Vault.open(tmp_path / "vault.db", tmp_path / "master.key", create=True)
    pipeline = Pipeline(detector, vault)
    request = {
        "model": "m",
        "messages": [{"role": "user", "content": "I am Alice Novak."}],
    }
    result = pipeline.process_request(
        ApiShape.OPENAI_CHAT, json.dumps(request).encode(), NAMESPACE
    )
    assert ALICE in result.body.decode()
    yield pipeline
    vault.close()


def model_stream() -> bytes:
    """The model copies the client's token in pieces and names a colleague itself."""
    pieces = ["Hi ", ALICE[:5], ALICE[5:] + ",", " your", " colleague", " Bru", "no"]
    pieces += [" Pe", "tit", " will", " call", " you", "."]
    return sse(
        chat_chunk(""),
        *(chat_chunk(piece) for piece in pieces),
        chat_chunk(finish_reason="stop"),
        "[DONE]",
    )


def content_of(stream: bytes) -> str:
    text = ""
    for event in stream.decode().split("\n\n"):
        if event.startswith("data: {"):
            for choice in json.loads(event[6:])["choices"]:
                text += choice["delta"].get("content", "")
    return text


@pytest.mark.parametrize("split", ["events", "bytes", "random"])
def test_real_pipeline_restores_and_tokenizes(pipeline, split):
    stream = model_stream()
    chunks = {
        "events": [event + b"\n\n" for event in stream.split(b"\n\n") if event],
        "bytes": byte_chunks(stream),
        "random": random_chunks(stream, seed=7),
    }[split]
    processor = pipeline.response_text_processor(NAMESPACE, PRINCIPAL)
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, "text/event-stream", processor)

    client, recorded = run_stream(rewriter, chunks)

    assert (
        content_of(client) == f"Hi Alice Novak, your colleague {BRUNO} will call you."
    )
    assert content_of(recorded) == f"Hi {ALICE}, your colleague {BRUNO} will call you."
    assert b"Bruno" not in client
    assert b"Novak" not in recorded
    assert processor.counts == {"PERSON": 1}
    assert processor.restored == 1


def test_real_pipeline_first_event_early(pipeline):
    processor = pipeline.response_text_processor(NAMESPACE, PRINCIPAL)
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, "text/event-stream", processor)

    first = rewriter.feed(sse(chat_chunk(""), chat_chunk("Sure, here is the plan: ")))

    assert first == sse(chat_chunk(""), chat_chunk("Sure, here is the plan: "))


def test_real_pipeline_token_of_other_namespace_kept(pipeline):
    processor = pipeline.response_text_processor("ns-other", PRINCIPAL)
    rewriter = rewriter_for(ApiShape.OPENAI_CHAT, "text/event-stream", processor)
    stream = sse(chat_chunk("Hi " + ALICE[:3]), chat_chunk(ALICE[3:] + " ok"), "[DONE]")

    client, _ = run_stream(rewriter, [stream])

    assert content_of(client) == f"Hi {ALICE} ok"
    assert processor.restored == 0
    assert processor.unrestored == 1
