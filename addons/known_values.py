"""Finding copies of values that the vault already stores in a namespace.

The detector can miss a copy of a name that it found elsewhere, for example the same
name written in lower case. The sweep takes the word sequences of a text outside its
tokens, normalizes them as the vault does and queries the vault for those that already
have a token of a name type in the namespace. Only lookup digests are compared, so
nothing is decrypted and no value is guessed: a sequence matches only when its
normalized form equals a stored value exactly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spacy.lang.en.stop_words import STOP_WORDS

from vault.normalize import NAME_TYPES, normalize_value
from vault.tokens import TokenFormat

if TYPE_CHECKING:
    from vault import Vault

logger = logging.getLogger(__name__)

# Types whose values come from named entity recognition, which misses some copies.
# Order decides the type of a sequence that is stored under more than one of them.
SWEPT_ENTITY_TYPES = ("PERSON", "LOCATION")
MAX_WORDS = 4

_WORD = re.compile(r"\w+")
# Characters that may separate the parts of one value: "Ferreira-Ek", "O'Brien",
# "St. Louis". Whitespace separates words, the others only parts of a word.
_JOINER = re.compile(r"[\s'’.\-]{1,3}")
_NORMALIZATION_TYPE = SWEPT_ENTITY_TYPES[0]
# Kinds of gap between neighbouring words: a break, inside one word, between words.
_BREAK, _SAME_WORD, _NEW_WORD = 0, 1, 2


@dataclass(frozen=True)
class KnownSpan:
    """A copy of a known value: its offsets in the swept text and its type."""

    start: int
    end: int
    entity_type: str


class KnownValueSweep:
    """Sweep of batches of text for values with a token in the namespace.

    Token-shaped text is skipped, also in the lenient forms that restoring accepts
    ("[person _ 13]"). Sequences whose first or last word is an English
    stop word (spaCy's list) are not looked up. This keeps a one-word name like
    "Will" from replacing the verb, and it leaves 6924 of the 18667 sequences of the
    32 KB prompt of scripts/bench_pipeline.py to look up.

    NOTE: a stored one-word value that is also an ordinary word other than a stop
    word ("Page", "Nice") is found wherever that word occurs in the namespace.
    """

    def __init__(
        self,
        vault: Vault,
        token_format: TokenFormat,
        entity_types: Sequence[str] = SWEPT_ENTITY_TYPES,
    ) -> None:
        unsupported = set(entity_types) - NAME_TYPES
        if unsupported:
            raise ValueError(
                f"invalid entity types {sorted(unsupported)} for the known-value "
                f"sweep: it normalizes as for name types only; pass a subset of "
                f"{sorted(NAME_TYPES)}"
            )
        self.vault = vault
        self.token_format = token_format
        self.entity_types = tuple(entity_types)

    def find(self, texts: Sequence[str], namespace: str) -> list[list[KnownSpan]]:
        """Return per text the non-overlapping copies of known values, in order.

        Calls Vault.known_values once per entity type for the whole batch.
        Where copies overlap, the leftmost and then the longest one wins.
        """
        normalized: dict[str, str] = {}
        candidates = [self._candidates(text, normalized) for text in texts]
        unique = {value for found in candidates for _, _, value in found}
        if not unique:
            return [[] for _ in texts]

        type_of: dict[str, str] = {}
        for entity_type in self.entity_types:
            remaining = unique.difference(type_of)
            if not remaining:
                break
            for value in self.vault.known_values(namespace, entity_type, remaining):
                type_of[value] = entity_type

        spans: list[list[KnownSpan]] = []
        for found in candidates:
            hits = [
                KnownSpan(start, end, type_of[value])
                for start, end, value in found
                if value in type_of
            ]
            spans.append(_leftmost_longest(hits))
        if type_of:
            logger.debug(
                "found %d copies of known values in namespace %s",
                sum(map(len, spans)),
                namespace,
            )
        return spans

    def _candidates(
        self, text: str, normalized: dict[str, str]
    ) -> list[tuple[int, int, str]]:
        """Return (start, end, normalized value) of each word sequence worth a lookup.

        `normalized` memoizes normalize_value over the batch, because histories and
        retrieved documents repeat the same phrases.
        """
        words = _words_outside_tokens(text, self.token_format)
        # Per word: how it joins the word before it (see _gap_kind).
        joins = [_BREAK] + [
            _gap_kind(text[words[index - 1][1] : words[index][0]])
            for index in range(1, len(words))
        ]
        bounds = [_may_bound_value(word) for _, _, word in words]
        candidates: list[tuple[int, int, str]] = []
        for first in range(len(words)):
            if not bounds[first]:
                continue
            start = words[first][0]
            word_count = 1
            for last in range(first, len(words)):
                if last > first:
                    if joins[last] == _BREAK:
                        break
                    word_count += joins[last] == _NEW_WORD
                    if word_count > MAX_WORDS:
                        break
                if not bounds[last]:
                    continue
                raw = text[start : words[last][1]]
                value = normalized.get(raw)
                if value is None:
                    value = normalize_value(raw, _NORMALIZATION_TYPE)
                    normalized[raw] = value
                candidates.append((start, words[last][1], value))
        return candidates


def _words_outside_tokens(
    text: str, token_format: TokenFormat
) -> list[tuple[int, int, str]]:
    """Return (start, end, word) of the words of `text` that are not inside a token.

    A token between two words is left out of the list, and the gap check of the
    caller then keeps any sequence from spanning it.
    """
    tokens = token_format.find(text, lenient=True)
    words: list[tuple[int, int, str]] = []
    token_index = 0
    for match in _WORD.finditer(text):
        start, end = match.span()
        while token_index < len(tokens) and tokens[token_index].end <= start:
            token_index += 1
        if token_index < len(tokens) and tokens[token_index].start < end:
            continue
        words.append((start, end, match.group()))
    return words


def _gap_kind(gap: str) -> int:
    if not _JOINER.fullmatch(gap):
        return _BREAK
    if any(char.isspace() for char in gap):
        return _NEW_WORD
    return _SAME_WORD


def _may_bound_value(word: str) -> bool:
    """Check whether `word` may begin or end a stored name or place."""
    return word.isalpha() and word.casefold() not in STOP_WORDS


def _leftmost_longest(hits: list[KnownSpan]) -> list[KnownSpan]:
    hits.sort(key=lambda hit: (hit.start, -hit.end))
    chosen: list[KnownSpan] = []
    for hit in hits:
        if not chosen or hit.start >= chosen[-1].end:
            chosen.append(hit)
    return chosen
