"""Person and place names that the statistical recognizer mislabels or misses.

The small English pipeline often labels a full name as an organization ("Julia
Novotny" -> ORG), misses a name after "Dear", and finds no entity in JSON or CSV
values, where a name has no sentence around it. Three rules correct this from
evidence in the text itself:

- A run of two to four capitalized words that the recognizer did not label PERSON
  becomes PERSON when it is shaped like a personal name (no common English verb,
  adjective or adverb, stop word or organization word such as "Ltd" or "Team") and
  a person cue is next to it. Cues are a title or greeting, a word for a person or a
  verb of contacting before it, a verb of speaking after it, or a PERSON entity
  joined to it by "and" or ",".
- A single-word PERSON span right after "in", "at" or "near" becomes LOCATION.
- A JSON string value or a CSV cell shaped like a name becomes PERSON or LOCATION
  when its key or column name gives the type ("full_name", "assignee", "city").

Every rule needs capitalized words, so lower-case words, numbers and code are not
affected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc


# (start, end, entity type) in the text the rules read.
NameSpan = tuple[int, int, str]

ORGANIZATION_WORDS = frozenset(
    """
    academy agency airlines analytics association assurance bank bot capital
    center centre club co college committee company consulting corp corporation
    council department engineering enterprises foundation fund gateway gmbh group
    holdings hospital inc industries institute international labs llc llp logistics
    ltd media ministry network networks office operations partners platform plc pro
    report school service services software solutions studio studios success
    support systems team technologies traders trading trust university ventures
    """.split()
)
TITLES = frozenset("dear mr mrs ms miss mx dr prof sir madam".split())
GREETINGS = frozenset("hi hello hey thanks thank dear".split())
# Words before a name that say a person follows.
PERSON_CUES_BEFORE = frozenset(
    """
    applicant author call called cc bcc client colleague contact customer email
    emailed employee invite manager meet met named patient ping remind reply tell
    ask asked user by
    """.split()
)
# Words after a name that say it is a person.
PERSON_CUES_AFTER = frozenset(
    """
    says said reported reports wrote writes asked asks agreed agrees replied
    called emailed confirmed confirms will
    """.split()
)
LOCATIVE_PREPOSITIONS = frozenset({"in", "at", "near"})
PERSON_KEYS = frozenset(
    """
    name fullname assignee author owner contact recipient sender manager employee
    patient person reporter reviewer approver signer member
    """.split()
)
LOCATION_KEYS = frozenset(
    "city town location office country place hometown birthplace".split()
)

_NAME_WORD = re.compile(r"[^\W\d_]+(?:['\-][^\W\d_]+)*\.?")
_JSON_PAIR = re.compile(
    r'"(?P<key>[A-Za-z][\w .-]{0,40})"\s*:\s*"(?P<value>[^"\\\n]{1,100})"'
)
_KEY_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_CSV_SEPARATORS = (",", ";", "\t")


def relabeled_entities(
    text: str, doc: Doc, common_words: frozenset[str]
) -> list[NameSpan]:
    """Return PERSON and LOCATION spans that correct or add to `doc`'s entities.

    Runs of capitalized words that the recognizer labeled as something other than a
    person, or did not label, become PERSON when they are shaped like a name and
    have a person cue next to them.
    """
    found: list[NameSpan] = []
    persons = [entity for entity in doc.ents if entity.label_ == "PERSON"]
    for start, end in _capitalized_runs(doc):
        if any(p.start < end and start < p.end for p in persons):
            continue
        span = doc[start:end]
        if not _is_person_name(span.text, common_words):
            continue
        if _has_person_cue(doc, start, end, persons):
            found.append((span.start_char, span.end_char, "PERSON"))
    for entity in persons:
        if len(entity) == 1 and entity.start > 0:
            before = doc[entity.start - 1].lower_
            if before in LOCATIVE_PREPOSITIONS:
                found.append((entity.start_char, entity.end_char, "LOCATION"))
    return found


def _capitalized_runs(doc: Doc) -> Iterator[tuple[int, int]]:
    """Yield token ranges of two to four capitalized words, titles left out."""
    start = None
    for index in range(len(doc) + 1):
        token = doc[index] if index < len(doc) else None
        is_name_word = (
            token is not None
            and _NAME_WORD.fullmatch(token.text) is not None
            and _is_capitalized(token.text)
            and token.text.rstrip(".").lower() not in TITLES | GREETINGS
            and token.whitespace_ in (" ", "")
        )
        if is_name_word and start is None:
            start = index
        elif not is_name_word and start is not None:
            if 2 <= index - start <= 4:
                yield start, index
            start = None


def structured_names(text: str, common_words: frozenset[str]) -> list[NameSpan]:
    """Return names in JSON values and CSV cells whose key or column gives the type."""
    found: list[NameSpan] = []
    for match in _JSON_PAIR.finditer(text):
        entity_type = _type_for_key(match.group("key"))
        if entity_type is None:
            continue
        start, end = match.span("value")
        if _fits(text[start:end], entity_type, common_words):
            found.append((start, end, entity_type))
    for start, end, entity_type in _csv_cells(text):
        if _fits(text[start:end], entity_type, common_words):
            found.append((start, end, entity_type))
    return found


def _fits(value: str, entity_type: str, common_words: frozenset[str]) -> bool:
    if entity_type == "PERSON":
        return _is_person_name(value, common_words)
    return _is_place_name(value)


def _type_for_key(key: str) -> str | None:
    """Return the entity type a key names by its last word: "full_name" -> PERSON."""
    words = [word.lower() for word in _KEY_WORD.findall(key)]
    if not words:
        return None
    if words[-1] in PERSON_KEYS or "".join(words[-2:]) in PERSON_KEYS:
        return "PERSON"
    if words[-1] in LOCATION_KEYS:
        return "LOCATION"
    return None


def _csv_cells(text: str) -> Iterator[NameSpan]:
    """Yield cells of CSV-like tables whose header names a person or place column.

    A table is a header line followed by lines with the same number of cells, all
    cut by one separator. Quoted cells are not parsed.
    """
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    index = 0
    while index < len(lines):
        header = lines[index].rstrip("\r\n")
        separator = next((sep for sep in _CSV_SEPARATORS if sep in header), None)
        if separator is None:
            index += 1
            continue
        columns = [_type_for_key(cell.strip()) for cell in header.split(separator)]
        if not any(columns) or len(columns) < 2:
            index += 1
            continue
        row = index + 1
        while row < len(lines):
            content = lines[row].rstrip("\r\n")
            cells = content.split(separator)
            if len(cells) != len(columns):
                break
            position = offsets[row]
            for cell, entity_type in zip(cells, columns):
                stripped = cell.strip()
                if entity_type is not None and stripped:
                    start = position + cell.index(stripped)
                    yield start, start + len(stripped), entity_type
                position += len(cell) + len(separator)
            row += 1
        index = row


def _is_person_name(value: str, common_words: frozenset[str]) -> bool:
    words = value.split()
    if not 2 <= len(words) <= 4:
        return False
    for word in words:
        if not _NAME_WORD.fullmatch(word) or not _is_capitalized(word):
            return False
        lowered = word.rstrip(".").lower()
        if lowered in ORGANIZATION_WORDS or lowered in STOP_WORDS:
            return False
        if len(lowered) > 1 and _is_common_word(lowered, common_words):
            return False
    return True


def _is_common_word(word: str, common_words: frozenset[str]) -> bool:
    """Check `word` against `common_words` in its regular inflected forms.

    Only real English endings count, so a surname such as "Mendes" is not read as
    "mend" + "es" ("-es" follows only s, x, z, ch and sh).
    """
    if word in common_words:
        return True
    for suffix in ("ing", "ed", "d"):
        if word.endswith(suffix) and word[: -len(suffix)] in common_words:
            return True
    if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2] in common_words
    return word.endswith("s") and not word.endswith("es") and word[:-1] in common_words


def _is_place_name(value: str) -> bool:
    words = value.split()
    if not 1 <= len(words) <= 4:
        return False
    return all(
        _NAME_WORD.fullmatch(word)
        and _is_capitalized(word)
        and word.lower() not in ORGANIZATION_WORDS
        for word in words
    ) and any(len(word) >= 3 for word in words)


def _is_capitalized(word: str) -> bool:
    """Check for a capital first letter and a lower-case rest ("O'Brien", "J.")."""
    if not word[0].isupper():
        return False
    rest = word[1:].rstrip(".")
    return rest == "" or not rest.isupper()


def _has_person_cue(doc: Doc, start: int, end: int, persons: list) -> bool:
    before = [token.lower_.rstrip(".") for token in doc[max(0, start - 2) : start]]
    if any(word in PERSON_CUES_BEFORE | TITLES | GREETINGS for word in before):
        return True
    if before == ["name", "is"]:
        return True
    if end < len(doc) and doc[end].lower_ in PERSON_CUES_AFTER:
        return True
    for person in persons:
        if person.start == end + 1 and doc[end].lower_ in ("and", ","):
            return True
        if start == person.end + 1 and doc[person.end].lower_ in ("and", ","):
            return True
    return False
