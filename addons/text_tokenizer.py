"""Tokenizing and restoring batches of content text through the vault.

`TextTokenizer` turns detected spans into vault tokens for a batch of texts in one vault
transaction, and `TokenRestorer` puts the values of entitled tokens back. Both work on
plain strings; `addons.pipeline` applies them to API bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections import Counter, OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from addons.known_values import KnownValueSweep
from vault.tokens import TokenFormat

if TYPE_CHECKING:
    from vault import Vault

logger = logging.getLogger(__name__)


class SpanLike(Protocol):
    start: int
    end: int
    entity_type: str


class SpanDetector(Protocol):
    def detect(self, text: str) -> Sequence[SpanLike]: ...


@dataclass(frozen=True)
class TokenizedText:
    """One text with its detected values replaced by tokens."""

    text: str
    counts: tuple[tuple[str, int], ...]
    tokens: frozenset[str]


class TokenizedTextCache:
    """LRU cache of tokenized text per namespace, keyed by an HMAC of the input text.

    The key is random per process, so a digest in memory cannot be matched against a
    guessed value elsewhere. Entries contain tokenized text only, never the input.

    NOTE: an entry outlives the tokens in it. After the vault expires or purges such a
    token, resent text still gets the old token, which no longer restores, until the
    entry is evicted or the process restarts.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 0:
            raise ValueError(f"invalid cache size {max_size}: expected 0 or more")
        self.max_size = max_size
        self.hits = 0
        self.misses = 0
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, TokenizedText] = OrderedDict()
        self._lock = threading.Lock()

    def digest(self, namespace: str, origin: str, text: str) -> bytes:
        message = b"\0".join(
            part.encode("utf-8", "surrogatepass") for part in (namespace, origin, text)
        )
        return hmac.digest(self._key, message, hashlib.sha256)

    def get(self, digest: bytes) -> TokenizedText | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(digest)
            self.hits += 1
            return entry

    def put(self, digest: bytes, entry: TokenizedText) -> None:
        if self.max_size == 0:
            return
        with self._lock:
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class _PlannedSpan:
    start: int
    end: int
    entity_type: str


class TextTokenizer:
    """Replacement of detected values in batches of text by tokens of a namespace.

    Canonical token text that this namespace already issued stays as it is, so a client
    can send earlier output back. Token-shaped text that the namespace did not issue is
    plain text: it is never looked up in another namespace. With a `sweep`, copies of
    name values that the namespace already stores become tokens too, also where the
    detector missed them.
    """

    def __init__(
        self,
        detector: SpanDetector,
        vault: Vault,
        token_format: TokenFormat,
        cache: TokenizedTextCache | None = None,
        sweep: KnownValueSweep | None = None,
    ) -> None:
        self.detector = detector
        self.vault = vault
        self.token_format = token_format
        self.cache = cache
        self.sweep = sweep

    def tokenize_texts(
        self, texts: Sequence[str], namespace: str, origin: str
    ) -> list[TokenizedText]:
        """Tokenize every text: detected values first, then copies of known values.

        Detected values of all texts share one vault transaction, and copies of known
        values that the sweep finds share a second one.
        """
        results: list[TokenizedText | None] = [None] * len(texts)
        digests: dict[str, bytes] = {}
        pending: dict[str, list[int]] = {}

        for index, text in enumerate(texts):
            if text in pending:
                pending[text].append(index)
                continue
            if self.cache is not None:
                if text not in digests:
                    digests[text] = self.cache.digest(namespace, origin, text)
                cached = self.cache.get(digests[text])
                if cached is not None:
                    results[index] = cached
                    continue
            pending[text] = [index]

        if pending:
            issued: dict[str, bool] = {}
            plans = {
                text: self._plan_spans(text, namespace, issued) for text in pending
            }
            items = [
                (text[span.start : span.end], span.entity_type)
                for text, spans in plans.items()
                for span in spans
            ]
            tokens = iter(self.vault.tokenize_many(items, namespace, origin=origin))
            for text, spans in plans.items():
                entry = _replace_spans(text, spans, [next(tokens) for _ in spans])
                for index in pending[text]:
                    results[index] = entry

        complete: list[TokenizedText] = []
        for result in results:
            assert result is not None
            complete.append(result)
        if self.sweep is not None:
            swept = self._replace_known_values(complete, namespace, origin)
        else:
            swept = complete

        if self.cache is not None:
            # Cached entries are swept again on every use, because the namespace may
            # have learned a value since. An entry that changed replaces the old one.
            changed = {
                text: entry
                for text, entry, before in zip(texts, swept, complete, strict=True)
                if text in pending or entry is not before
            }
            for text, entry in changed.items():
                self.cache.put(digests[text], entry)
        return swept

    def _replace_known_values(
        self, entries: list[TokenizedText], namespace: str, origin: str
    ) -> list[TokenizedText]:
        """Return the entries with copies of values known in the namespace tokenized."""
        assert self.sweep is not None
        unique = list(dict.fromkeys(entry.text for entry in entries))
        found = dict(zip(unique, self.sweep.find(unique, namespace), strict=True))
        items = [
            (text[span.start : span.end], span.entity_type)
            for text, spans in found.items()
            for span in spans
        ]
        if not items:
            return entries
        tokens = iter(self.vault.tokenize_many(items, namespace, origin=origin))
        replaced: dict[str, TokenizedText] = {}
        for text, spans in found.items():
            if spans:
                replaced[text] = _replace_spans(
                    text, spans, [next(tokens) for _ in spans]
                )
        return [
            _merge(entry, replaced[entry.text]) if entry.text in replaced else entry
            for entry in entries
        ]

    def _plan_spans(
        self, text: str, namespace: str, issued: dict[str, bool]
    ) -> list[_PlannedSpan]:
        """Return the detected spans of `text` minus tokens this namespace issued."""
        spans = self.detector.detect(text)
        if not spans:
            return []

        protected: list[tuple[int, int]] = []
        for match in self.token_format.find(text):
            if not match.valid:
                continue
            if match.token not in issued:
                info = self.vault.token_info(match.token, namespace)
                issued[match.token] = info is not None
            if issued[match.token]:
                protected.append((match.start, match.end))

        planned: list[_PlannedSpan] = []
        for span in spans:
            for start, end in _subtract(span.start, span.end, protected):
                start, end = _strip_blanks(text, start, end)
                if start < end:
                    planned.append(_PlannedSpan(start, end, span.entity_type))
        return planned


def _subtract(
    start: int, end: int, protected: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Return the pieces of [start, end) outside the sorted protected ranges."""
    pieces = []
    position = start
    for low, high in protected:
        if high <= position or low >= end:
            continue
        if low > position:
            pieces.append((position, low))
        position = max(position, high)
    if position < end:
        pieces.append((position, end))
    return pieces


def _strip_blanks(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _replace_spans(
    text: str, spans: Sequence[SpanLike], tokens: Sequence[str]
) -> TokenizedText:
    # Spliced directly rather than through presidio-anonymizer 2.2.366: its engine
    # merges adjacent entities of one type ("Alice Novak Bruno Petit" becomes one
    # token) unless told not to, and took 2.4x the splice time for the same spans
    # (scripts/bench_pipeline.py prints both).
    pieces: list[str] = []
    position = 0
    for span, token in zip(spans, tokens, strict=True):
        pieces.append(text[position : span.start])
        pieces.append(token)
        position = span.end
    pieces.append(text[position:])
    counts = Counter(span.entity_type for span in spans)
    return TokenizedText(
        text="".join(pieces),
        counts=tuple(sorted(counts.items())),
        tokens=frozenset(tokens),
    )


def _merge(earlier: TokenizedText, later: TokenizedText) -> TokenizedText:
    """Return `later` with the counts and tokens of `earlier`, whose output it swept."""
    counts = Counter(dict(earlier.counts))
    counts.update(dict(later.counts))
    return TokenizedText(
        text=later.text,
        counts=tuple(sorted(counts.items())),
        tokens=earlier.tokens | later.tokens,
    )


@dataclass
class RestoreResult:
    texts: list[str]
    restored: int
    unrestored: int


class TokenRestorer:
    """Restoration of the values of the tokens that a principal may see.

    Tokens are found leniently (case, inner blanks, one lost bracket). A token whose
    check digit fails, that another namespace issued, or whose origin is not in
    `origins` stays as it is and is counted as unrestored.
    """

    def __init__(
        self,
        vault: Vault,
        token_format: TokenFormat,
        origins: Collection[str],
    ) -> None:
        self.vault = vault
        self.token_format = token_format
        self.origins = tuple(origins)

    def restore_texts(
        self, texts: Sequence[str], namespace: str, principal: str
    ) -> RestoreResult:
        """Restore the tokens in every text with one reveal for the whole batch."""
        found = [self.token_format.find(text, lenient=True) for text in texts]
        wanted = {match.token for matches in found for match in matches if match.valid}
        values: dict[str, str] = {}
        # With no origin allowed, nothing can be revealed, so the vault is not asked.
        if wanted and self.origins:
            values = self.vault.reveal_many(
                sorted(wanted),
                namespace,
                actor=principal,
                purpose="response",
                origins=self.origins,
            )

        restored = 0
        unrestored = 0
        output: list[str] = []
        for text, matches in zip(texts, found, strict=True):
            pieces: list[str] = []
            position = 0
            for match in matches:
                value = values.get(match.token) if match.valid else None
                if value is None:
                    unrestored += 1
                    continue
                pieces.append(text[position : match.start])
                pieces.append(value)
                position = match.end
                restored += 1
            pieces.append(text[position:])
            output.append("".join(pieces))

        if unrestored:
            logger.debug(
                "left %d tokens unrestored in namespace %s", unrestored, namespace
            )
        return RestoreResult(output, restored, unrestored)
