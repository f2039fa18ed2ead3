"""The callable that mitmproxy runs on each chunk of a streamed model response.

It adapts a `StreamRewriter` to mitmproxy's `flow.response.stream` contract. An empty
result mid-stream becomes `[]`, because an empty chunk would end a chunked HTTP/1.1
body. The final `b""` call flushes the rewriter. Any exception ends the stream with one
error event instead of passing upstream bytes on unprocessed.

mitmproxy calls the stream callable synchronously while it holds the lock of the whole
proxy, so the time a rewriter spends in detection delays every other flow by as much.
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Protocol

from addons.errors import Rejection, stream_error_event
from addons.shapes import ApiShape

logger = logging.getLogger(__name__)


class StreamRewriter(Protocol):
    recorded: bytearray

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class StreamDecoder(Protocol):
    def decompress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def stream_decoder(content_encoding: str) -> StreamDecoder | None:
    """Return an incremental decoder for gzip or deflate, or None for identity.

    Raises ValueError for other encodings. The gateway requests identity encoding
    upstream, so these only come from servers that ignore Accept-Encoding.
    """
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise ValueError(f"cannot decode a streamed body with content-encoding {encoding!r}")


class GuardedStream:
    """Run one response stream through a rewriter, failing closed on any error."""

    def __init__(
        self,
        rewriter: StreamRewriter,
        shape: ApiShape,
        content_type: str,
        flow_id: str,
        decoder: StreamDecoder | None = None,
    ) -> None:
        self.rewriter = rewriter
        self.shape = shape
        self.content_type = content_type
        self.flow_id = flow_id
        self.decoder = decoder
        self.failed: str | None = None
        self.finished = False
        # Seconds spent inside the rewriter, under mitmproxy's lock.
        self.busy_seconds = 0.0

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        if self.failed is not None or self.finished:
            return []
        started = time.perf_counter()
        try:
            output = self._rewrite(chunk)
        except Exception as e:
            return self._fail(e)
        finally:
            self.busy_seconds += time.perf_counter() - started
        return output if output else []

    def _rewrite(self, chunk: bytes) -> bytes:
        if chunk == b"":
            self.finished = True
            tail = self.decoder.flush() if self.decoder is not None else b""
            output = self.rewriter.feed(tail) if tail else b""
            return output + self.rewriter.finish()
        if self.decoder is not None:
            chunk = self.decoder.decompress(chunk)
            if not chunk:
                return b""
        return self.rewriter.feed(chunk)

    def _fail(self, error: Exception) -> bytes:
        # The exception message may quote stream text, so only its type is logged.
        self.failed = type(error).__name__
        logger.error(
            "flow %s: stream rewriting failed with %s; the stream was ended with an "
            "error event",
            self.flow_id,
            self.failed,
        )
        rejection = Rejection(
            502,
            "stream_processing_failed",
            "tokengate could not process the model's streamed response and ended the "
            "stream. Retry the request; the gateway log has the flow id.",
        )
        return stream_error_event(self.shape, self.content_type, rejection)
