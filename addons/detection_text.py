"""Text preparation for detection: Unicode normalization, chunking, case restoration.

Detection runs on a normalized copy of the input (NFKC, dash variants folded to
"-", zero-width characters removed) so that full-width digits, a full-width "@" or
a zero-width space inside an e-mail address do not hide a value. `NormalizedText`
maps spans in that copy back to the original text, so callers replace the
original characters.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from spacy.lang.en.stop_words import STOP_WORDS

from vault.normalize import DASHES, ZERO_WIDTH

_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


@dataclass(frozen=True)
class _Segment:
    normalized_start: int
    original_start: int
    normalized_length: int
    original_length: int
    identity: bool


class NormalizedText:
    """A normalized copy of a text with a map from its offsets to the original."""

    def __init__(self, original: str) -> None:
        self.original = original
        if original.isascii():
            self.text = original
            self._segments: list[_Segment] | None = None
            return

        parts: list[str] = []
        segments: list[_Segment] = []
        normalized_length = 0
        last_end = 0
        for run in _NON_ASCII_RUN.finditer(original):
            if run.start() > last_end:
                ascii_part = original[last_end : run.start()]
                segments.append(
                    _Segment(normalized_length, last_end, len(ascii_part), 0, True)
                )
                parts.append(ascii_part)
                normalized_length += len(ascii_part)
            for group_start, group in _character_groups(original, run):
                replacement = _normalize_group(group)
                if replacement:
                    segments.append(
                        _Segment(
                            normalized_length,
                            group_start,
                            len(replacement),
                            len(group),
                            False,
                        )
                    )
                    parts.append(replacement)
                    normalized_length += len(replacement)
            last_end = run.end()
        if last_end < len(original):
            ascii_part = original[last_end:]
            segments.append(
                _Segment(normalized_length, last_end, len(ascii_part), 0, True)
            )
            parts.append(ascii_part)

        self.text = "".join(parts)
        self._segments = segments
        self._starts = [segment.normalized_start for segment in segments]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the span [start, end) of the normalized text to the original."""
        if self._segments is None:
            return start, end
        first = self._segments[bisect.bisect_right(self._starts, start) - 1]
        last = self._segments[bisect.bisect_right(self._starts, end - 1) - 1]
        if first.identity:
            original_start = first.original_start + (start - first.normalized_start)
        else:
            original_start = first.original_start
        if last.identity:
            original_end = last.original_start + (end - last.normalized_start)
        else:
            original_end = last.original_start + last.original_length
        return original_start, original_end


def _character_groups(text: str, run: re.Match[str]):
    """Yield (offset, characters) for each base character with its combining marks."""
    start = run.start()
    position = start
    while position < run.end():
        group_end = position + 1
        while group_end < run.end() and unicodedata.combining(text[group_end]):
            group_end += 1
        yield position, text[position:group_end]
        position = group_end


def _normalize_group(group: str) -> str:
    if group in ZERO_WIDTH:
        return ""
    normalized = unicodedata.normalize("NFKC", group)
    return "".join(DASHES.get(ch, ch) for ch in normalized if ch not in ZERO_WIDTH)


def split_chunks(
    text: str,
    size: int,
    overlap: int,
    keep_whole: Sequence[tuple[int, int]] = (),
) -> list[tuple[int, str]]:
    """Cut `text` into pieces of about `size` characters, overlapping by `overlap`.

    Cuts fall on whitespace where there is some in the last quarter of a piece, so
    words stay whole. A cut never falls inside a region of `keep_whole`, which are
    sorted spans such as private key blocks that may be longer than the overlap.
    A piece grows past `size` to take such a region whole. Returns (offset, piece)
    pairs that cover the whole text.
    """
    if len(text) <= size:
        return [(0, text)]
    chunks: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = _last_whitespace(text, end - size // 4, end)
            if cut is not None:
                end = cut
            end = _outside_regions(end, start + overlap, keep_whole)
        chunks.append((start, text[start:end]))
        if end >= len(text):
            break
        next_start = end - overlap
        whitespace = _first_whitespace(text, next_start, end)
        start = whitespace + 1 if whitespace is not None else next_start
    return chunks


def _outside_regions(end: int, lowest: int, regions: Sequence[tuple[int, int]]) -> int:
    """Move a cut at `end` out of any region: before it if possible, else after."""
    for region_start, region_end in regions:
        if region_start < end < region_end:
            return region_start if region_start > lowest else region_end
    return end


def _last_whitespace(text: str, low: int, high: int) -> int | None:
    for position in range(high - 1, low - 1, -1):
        if text[position].isspace():
            return position
    return None


def _first_whitespace(text: str, low: int, high: int) -> int | None:
    for position in range(low, high):
        if text[position].isspace():
            return position
    return None


_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_CODE_CHARACTERS = re.compile(r"[{}()\[\];=<>_/\\`|$#*]")


def restore_case(text: str, common_words: frozenset[str] = frozenset()) -> str | None:
    """Return a copy of `text` with prose lines written all lower or all upper case
    re-capitalized and all other lines blanked, or None when no line needs it.

    The small English pipeline finds names mainly by their capital letters, so
    "please call jonas ferreira-ek" is missed without this. Each word of such a line
    gets an upper-case first letter and lower-case rest, unless it is a stop word
    or, in a simple inflected form, one of `common_words` (verbs, adjectives and
    adverbs, which are rarely names). The copy has the same length, so offsets stay
    valid. Lines that look like code are left alone.
    """
    changed = False
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        restored = _restore_line(line, common_words)
        if restored is not None:
            lines[index] = restored
            changed = True
        else:
            # Blank lines cost the recognizer almost nothing; only restored lines
            # are read again.
            lines[index] = _blank(line)
    return "".join(lines) if changed else None


def _blank(line: str) -> str:
    content = line.rstrip("\r\n")
    return " " * len(content) + line[len(content) :]


def _restore_line(line: str, common_words: frozenset[str]) -> str | None:
    words = _WORD.findall(line)
    if len(words) < 2:
        return None
    if len(_CODE_CHARACTERS.findall(line)) > len(line) // 40:
        return None
    upper_words = sum(1 for word in words if word.isupper() and len(word) > 1)
    capitalized = sum(1 for word in words if word[0].isupper() and not word.isupper())
    shouting = upper_words >= 0.8 * len(words) and len(words) >= 3
    lower_style = capitalized == 0 and upper_words <= max(1, len(words) // 5)
    if not (shouting or lower_style):
        return None

    def recapitalize(match: re.Match[str]) -> str:
        word = match.group(0)
        if word.isupper() and not shouting:
            return word
        lowered = word.lower()
        if lowered in STOP_WORDS or is_common_word(lowered, common_words):
            return lowered if _same_length(word, lowered) else word
        titled = _title_case(word)
        return titled if _same_length(word, titled) else word

    return _WORD.sub(recapitalize, line)


_INFLECTIONS = ("", "s", "es", "ed", "d", "ing")


def is_common_word(word: str, common_words: frozenset[str]) -> bool:
    return any(
        word.endswith(suffix) and word[: len(word) - len(suffix)] in common_words
        for suffix in _INFLECTIONS
    )


def _title_case(word: str) -> str:
    """Capitalize each hyphen-separated part: "ferreira-ek" -> "Ferreira-Ek"."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))


def _same_length(original: str, changed: str) -> bool:
    return len(original) == len(changed)
