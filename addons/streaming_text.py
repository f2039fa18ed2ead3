"""Text channels of a streamed response: what to hold back and what to release.

A channel is one run of text fragments inside a stream, such as the content of one
choice, the arguments of one tool call or one Anthropic content block. Each channel
keeps the not yet released text. On every fragment it releases all but the tail that
could still grow into a token or a sensitive value, tokenizes the released text (model
produced values become tokens) and restores the tokens that the principal may see.

Held tail: the longer of

* the characters that could still begin a token, from `TokenFormat.prefix_holdback`
  (lenient forms included), and
* the last word when no blank follows it yet, because it may grow into an email
  address, a number or a name. The held part extends to the left over the words before
  it on the same line while they look like parts of the same value: capitalized words
  for a name (``Alice Novak``), digit groups for a number (``+1 (555) 010 0199``). A
  finished capitalized word or digit group is held as well, because the next word may
  continue it. A word that ends in punctuation ends the value.

The value part is capped at `MAX_HELD_CHARS`, so a run without blanks longer than that
is released in pieces. Detection gets the last `CONTEXT_CHARS` characters of the
already released text as left context, so a value right at the start of a release is
judged with the words before it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vault.tokens import TokenFormat

if TYPE_CHECKING:
    from addons.pipeline import TextProcessor

logger = logging.getLogger(__name__)

MAX_HELD_CHARS = 128
"""Maximum length of the held value tail, in characters."""

CONTEXT_CHARS = 64
"""Length of the released text given to detection as left context, in characters."""

_BLANKS = " \t"
_OPENING_PUNCTUATION = "*_(\"'“‘«¿¡"
_CLOSING_PUNCTUATION = ",;:.!?)]}\"'”’»*_"

# A capitalized word of a name: letters, with inner apostrophes and hyphens.
_NAME_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-])*")
# A group of a number such as a phone, card, IBAN or date: contains a digit.
_NUMBER_WORD = re.compile(r"[\w()./+-]*\d[\w()./+-]*")


@dataclass(frozen=True)
class ReleasedText:
    """Text released from a channel, as sent to the client and as recorded."""

    client: str
    recorded: str

    def __add__(self, other: ReleasedText) -> ReleasedText:
        return ReleasedText(self.client + other.client, self.recorded + other.recorded)


NOTHING_RELEASED = ReleasedText("", "")


def held_tail_length(text: str, token_format: TokenFormat) -> int:
    """Return how many trailing characters of `text` a channel must hold back."""
    token_tail = token_format.prefix_holdback(text, lenient=True)
    return max(token_tail, _value_tail_length(text))


def _value_tail_length(text: str) -> int:
    limit = max(0, len(text) - MAX_HELD_CHARS)
    word_end = len(text)
    while word_end > limit and text[word_end - 1] in _BLANKS:
        word_end -= 1
    word_start = _word_start(text, word_end, limit)
    if word_start == word_end:
        return 0
    if word_start == limit and limit > 0:
        # One run without blanks fills the whole window.
        return MAX_HELD_CHARS

    word = text[word_start:word_end]
    finished = word_end < len(text)
    if finished:
        kind = _value_kind(word)
        if kind is None:
            return 0
    else:
        kind = _value_kind(word.rstrip(_CLOSING_PUNCTUATION))

    start = word_start
    while kind is not None:
        gap_start = start
        while gap_start > limit and text[gap_start - 1] in _BLANKS:
            gap_start -= 1
        if gap_start == start:
            break
        previous_start = _word_start(text, gap_start, limit)
        if previous_start == gap_start or (previous_start == limit and limit > 0):
            break
        if _value_kind(text[previous_start:gap_start]) != kind:
            break
        start = previous_start
    return len(text) - start


def _word_start(text: str, end: int, limit: int) -> int:
    start = end
    while start > limit and not text[start - 1].isspace():
        start -= 1
    return start


def _value_kind(word: str) -> str | None:
    """Return "name" or "number" when `word` may be part of such a value, else None."""
    core = word.lstrip(_OPENING_PUNCTUATION)
    if not core:
        return None
    if core[0].isupper() and _NAME_WORD.fullmatch(core):
        return "name"
    if _NUMBER_WORD.fullmatch(core):
        return "number"
    return None


def process_whole(processor: TextProcessor, text: str) -> ReleasedText:
    """Tokenize and restore a complete text that no later fragment continues."""
    if not text:
        return NOTHING_RELEASED
    recorded = processor.tokenize(text)
    return ReleasedText(processor.restore(recorded), recorded)


class TextChannel:
    """Buffer of one channel: holds back a bounded tail and releases the rest.

    With `json_fragment`, the channel carries pieces of a JSON document (streamed tool
    arguments), and restored values are escaped for a JSON string.

    With `min_release_chars`, every release after the first waits until that many
    characters can be released, so detection runs fewer times per stream at the cost
    of latency. The first release is never delayed, so the first text arrives early.
    """

    def __init__(
        self,
        processor: TextProcessor,
        token_format: TokenFormat,
        *,
        json_fragment: bool = False,
        min_release_chars: int = 0,
    ) -> None:
        self._processor = processor
        self._token_format = token_format
        self._json_fragment = json_fragment
        self._min_release_chars = min_release_chars
        self._released_once = False
        self._pending = ""
        self._context = ""

    @property
    def pending(self) -> str:
        """Text received but not released yet."""
        return self._pending

    def push(self, fragment: str) -> ReleasedText:
        """Add a fragment and release the text that can no longer change."""
        if not fragment:
            return NOTHING_RELEASED
        self._pending += fragment
        held = held_tail_length(self._pending, self._token_format)
        cut = len(self._pending) - held
        if cut <= 0:
            return NOTHING_RELEASED
        if self._released_once and cut < self._min_release_chars:
            return NOTHING_RELEASED
        releasable = self._pending[:cut]
        self._pending = self._pending[cut:]
        return self._release(releasable)

    def flush(self) -> ReleasedText:
        """Release everything still held, at the end of the channel."""
        releasable = self._pending
        self._pending = ""
        if not releasable:
            return NOTHING_RELEASED
        return self._release(releasable)

    def _release(self, text: str) -> ReleasedText:
        self._released_once = True
        recorded = self._tokenize_with_context(text)
        self._context = _last_words(self._context + recorded)
        if self._json_fragment:
            client = self._restore_json_fragment(recorded)
        else:
            client = self._processor.restore(recorded)
        return ReleasedText(client, recorded)

    def _tokenize_with_context(self, text: str) -> str:
        if not self._context:
            return self._processor.tokenize(text)
        tokenized = self._processor.tokenize(self._context + text)
        if tokenized.startswith(self._context):
            return tokenized[len(self._context) :]
        # A detected span reaches into text that was already released, so the new
        # part of the output cannot be separated. Detect the new text alone instead.
        logger.debug("detection span crossed a stream release boundary")
        return self._processor.tokenize(text)

    def _restore_json_fragment(self, recorded: str) -> str:
        pieces: list[str] = []
        position = 0
        for match in self._token_format.find(recorded, lenient=True):
            token_text = recorded[match.start : match.end]
            restored = self._processor.restore(token_text)
            if restored == token_text:
                continue
            pieces.append(recorded[position : match.start])
            # Tokens sit inside JSON string literals, so quotes, backslashes and
            # control characters of the restored value must be escaped.
            pieces.append(json.dumps(restored, ensure_ascii=False)[1:-1])
            position = match.end
        pieces.append(recorded[position:])
        return "".join(pieces)


def _last_words(text: str) -> str:
    """Return the end of `text`, at most CONTEXT_CHARS long, starting at a word."""
    if len(text) <= CONTEXT_CHARS:
        return text
    window = text[-CONTEXT_CHARS:]
    for position, char in enumerate(window):
        if char.isspace():
            return window[position + 1 :]
    return ""
