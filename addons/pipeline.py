"""Tokenizing requests and restoring responses of model APIs, by API shape.

The pipeline has no mitmproxy dependency: the gateway calls it from a worker thread
with a body and the namespace of the principal, and gets the rewritten body back.

Request: content text is collected by shape, detected values become vault tokens in the
namespace (origin "client"), and the body is rendered with the tokens in place. Copies
of name values that the namespace already stores become tokens as well, also where the
detector missed them (a name written in lower case).

Response: values the model produced are tokenized too (origin "model"), giving the body
that is recorded. Then tokens the principal may see are restored, by default only those
whose value a client of this namespace submitted, giving the body the client receives.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from addons.known_values import KnownValueSweep
from addons.shapes import (
    ApiShape,
    BodyError,
    collect_request_texts,
    collect_response_texts,
    shape_for,
)
from addons.text_tokenizer import (
    RestoreResult,
    SpanDetector,
    TextTokenizer,
    TokenizedText,
    TokenizedTextCache,
    TokenRestorer,
)
from vault.tokens import DEFAULT_FORMAT, TokenFormat

if TYPE_CHECKING:
    from vault import Vault

__all__ = [
    "ApiShape",
    "BodyError",
    "Pipeline",
    "RequestResult",
    "ResponseResult",
    "TextProcessor",
    "shape_for",
]

logger = logging.getLogger(__name__)

CLIENT_ORIGIN = "client"
MODEL_ORIGIN = "model"


@dataclass
class RequestResult:
    body: bytes
    counts: dict[str, int]
    tokens: set[str]


@dataclass
class ResponseResult:
    client_body: bytes
    recorded_body: bytes
    counts: dict[str, int]
    restored: int
    unrestored: int


def _sum_counts(entries: Iterable[TokenizedText]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for entry in entries:
        totals.update(dict(entry.counts))
    return dict(totals)


class Pipeline:
    """Request tokenization and response restoration over one detector and vault.

    Thread-safe: the detector and the vault are, and the cache has its own lock.
    """

    def __init__(
        self,
        detector: SpanDetector,
        vault: Vault,
        *,
        cache_size: int = 10000,
        restore_origins: Collection[str] = (CLIENT_ORIGIN,),
        token_format: TokenFormat | None = None,
    ) -> None:
        self.detector = detector
        self.vault = vault
        self.restore_origins = tuple(restore_origins)
        if token_format is None:
            token_format = getattr(vault, "token_format", DEFAULT_FORMAT)
        self.token_format = token_format
        self.cache = TokenizedTextCache(cache_size)
        sweep = KnownValueSweep(vault, token_format)
        self._request_tokenizer = TextTokenizer(
            detector, vault, token_format, cache=self.cache, sweep=sweep
        )
        # Model output is new text every time, so caching it would only evict requests.
        self._response_tokenizer = TextTokenizer(
            detector, vault, token_format, sweep=sweep
        )
        self._restorer = TokenRestorer(vault, token_format, self.restore_origins)

    def process_request(
        self, shape: ApiShape, body: bytes, namespace: str
    ) -> RequestResult:
        """Return the request body with its content values tokenized.

        Raises BodyError for a body that cannot be parsed as its shape requires. Errors
        of the detector or the vault propagate, so the caller can reject the request.
        """
        texts = collect_request_texts(shape, body)
        entries = self._request_tokenizer.tokenize_texts(
            texts.texts, namespace, CLIENT_ORIGIN
        )
        tokens: set[str] = set()
        for entry in entries:
            tokens.update(entry.tokens)
        return RequestResult(
            body=texts.render([entry.text for entry in entries]),
            counts=_sum_counts(entries),
            tokens=tokens,
        )

    def process_response(
        self, shape: ApiShape, body: bytes, namespace: str, principal: str
    ) -> ResponseResult:
        """Return the recorded (tokenized) and the client (restored) response bodies."""
        texts = collect_response_texts(shape, body)
        entries = self._response_tokenizer.tokenize_texts(
            texts.texts, namespace, MODEL_ORIGIN
        )
        tokenized = [entry.text for entry in entries]
        restore = self._restorer.restore_texts(tokenized, namespace, principal)
        return ResponseResult(
            client_body=texts.render(restore.texts),
            recorded_body=texts.render(tokenized),
            counts=_sum_counts(entries),
            restored=restore.restored,
            unrestored=restore.unrestored,
        )

    def response_text_processor(self, namespace: str, principal: str) -> TextProcessor:
        """Return a processor for the text of one streamed response."""
        return TextProcessor(self, namespace, principal)

    def tokenize_texts(
        self, texts: list[str], namespace: str, origin: str
    ) -> list[TokenizedText]:
        """Tokenize a batch of texts. Client text goes through the per-text cache."""
        if origin == CLIENT_ORIGIN:
            tokenizer = self._request_tokenizer
        else:
            tokenizer = self._response_tokenizer
        return tokenizer.tokenize_texts(texts, namespace, origin)

    def restore_texts(
        self, texts: list[str], namespace: str, principal: str
    ) -> RestoreResult:
        """Restore the tokens `principal` may see, with one reveal for the batch."""
        return self._restorer.restore_texts(texts, namespace, principal)


@dataclass
class TextProcessor:
    """Tokenizer and restorer for the text of one streamed response and principal.

    A stream rewriter calls `tokenize` on text it has assembled and `restore` on the
    result; `counts`, `restored` and `unrestored` add up over the whole response.
    Not thread-safe: one instance serves one stream.
    """

    pipeline: Pipeline
    namespace: str
    principal: str
    restored: int = 0
    unrestored: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def tokenize(self, text: str) -> str:
        """Return `text` with values the model produced replaced by tokens."""
        if not text:
            return text
        (entry,) = self.pipeline.tokenize_texts([text], self.namespace, MODEL_ORIGIN)
        for entity_type, count in entry.counts:
            self.counts[entity_type] = self.counts.get(entity_type, 0) + count
        return entry.text

    def restore(self, text: str) -> str:
        """Return `text` with the tokens this principal may see replaced by values."""
        if not text:
            return text
        result = self.pipeline.restore_texts([text], self.namespace, self.principal)
        self.restored += result.restored
        self.unrestored += result.unrestored
        return result.texts[0]
