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

Two more checks clean PERSON and LOCATION spans from any source. `trim_name_span`
cuts off words next to a name that are not part of it: a contact verb or greeting
("Email Bob Marley", "Hi Bob Marley"), a capitalized common word that opens a
sentence ("Chunked Tony Stark"), a speaking verb after it and a possessive "'s".
Without this the same person would get one token with the verb and another
without it. `is_label_word` finds one-word PERSON spans that are a common word
opening a sentence ("Debug the parser") or a log-level label ("Info:").
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
# Verbs of contacting someone. Before a name they say a person follows, and they
# are never the first word of the name itself.
CONTACT_VERBS = frozenset(
    """
    ask asked call called cc bcc contact email emailed invite meet met ping remind
    reply tell
    """.split()
)
# Words before a name that say a person follows.
PERSON_CUES_BEFORE = CONTACT_VERBS | frozenset(
    """
    applicant author client colleague customer employee manager named patient user
    by
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
# Log levels and note labels that open a log or note line ("Info: cache miss").
LOG_LABELS = frozenset(
    """
    alert crit critical debug emerg err error fatal fixme info note notice todo
    trace verbose warn warning
    """.split()
)
# Lower-case words that belong inside a name ("Vincent van Gogh").
NAME_PARTICLES = frozenset("al bin da de del della der di du la le van von y".split())
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
_WORD_SPAN = re.compile(r"\S+")
_POSSESSIVE_ENDINGS = ("'s", "\u2019s")
# Characters between a sentence or line start and its first word: blanks, list
# bullets, quote marks and opening brackets.
_OPENING_CHARACTERS = frozenset(" \t-*>#\"'([")
_EDGE_PUNCTUATION = ",;:!?\"'"


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
        start = _skip_leading_non_name_words(doc, start, end, common_words)
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


def _skip_leading_non_name_words(
    doc: Doc, start: int, end: int, common_words: frozenset[str]
) -> int:
    """Return the first token of a capitalized run that may belong to a name.

    A contact verb is skipped anywhere, and a common word only where it opens a
    sentence and at least two words remain ("Review Bob Marley's notes").
    """
    opens_sentence = at_sentence_start(doc.text, doc[start].idx)
    while end - start > 2:
        word = doc[start].lower_
        skip = word in CONTACT_VERBS or (
            opens_sentence and _is_non_name_word(word, common_words)
        )
        if not skip:
            break
        start += 1
        opens_sentence = False
    return start


def trim_name_span(
    text: str, start: int, end: int, entity_type: str, common_words: frozenset[str]
) -> tuple[int, int]:
    """Return the span `start, end` of a PERSON or LOCATION without the words next
    to the name that are not part of it.

    Cut off before the name: a contact verb or greeting, and a lower-case word other
    than a particle such as "van" in a span with capitals. For PERSON, a common or
    stop word that opens a sentence is cut off too, when two words stay. Cut off after the name:
    a contact or speaking verb, the same lower-case words, and a possessive "'s".
    At least one word always stays. Place names keep a common first word ("New York",
    "Long Beach") because many of them start with one.
    """
    words = [match.span() for match in _WORD_SPAN.finditer(text, start, end)]
    if not words:
        return start, end
    mixed_case = any(text[s:e] != text[s:e].lower() for s, e in words)
    opens_sentence = at_sentence_start(text, words[0][0])
    while len(words) > 1 and _is_leading_non_name(
        text, words, entity_type, opens_sentence, mixed_case, common_words
    ):
        words.pop(0)
        opens_sentence = False
    while len(words) > 1 and _is_trailing_non_name(text, words[-1], mixed_case):
        words.pop()

    new_start, new_end = words[0][0], words[-1][1]
    while new_end > new_start and text[new_end - 1] in _EDGE_PUNCTUATION:
        new_end -= 1
    for ending in _POSSESSIVE_ENDINGS:
        if text[new_start:new_end].lower().endswith(ending):
            new_end -= len(ending)
            break
    while new_start < new_end and text[new_start] in _EDGE_PUNCTUATION:
        new_start += 1
    if new_end <= new_start:
        return start, end
    return new_start, new_end


def _is_leading_non_name(
    text: str,
    words: list[tuple[int, int]],
    entity_type: str,
    opens_sentence: bool,
    mixed_case: bool,
    common_words: frozenset[str],
) -> bool:
    word = _bare_word(text, words[0])
    if word in CONTACT_VERBS or word in GREETINGS:
        return True
    if mixed_case and _is_lower_case_word(text, words[0]):
        return True
    return (
        entity_type == "PERSON"
        and opens_sentence
        and len(words) > 2
        and _is_non_name_word(word, common_words)
    )


def _is_trailing_non_name(
    text: str, word_span: tuple[int, int], mixed_case: bool
) -> bool:
    word = _bare_word(text, word_span)
    if word in PERSON_CUES_AFTER or word in CONTACT_VERBS:
        return True
    return mixed_case and _is_lower_case_word(text, word_span)


def is_label_word(
    text: str,
    start: int,
    end: int,
    common_words: frozenset[str],
    nouns: frozenset[str],
) -> bool:
    """Check whether a one-word PERSON span is a common word and not a name.

    True for a log-level label at the start of a line ("Debug:", "Info:") and for
    a verb, adjective or adverb that is not also a noun when it opens a sentence
    without a comma or speaking verb after it ("Debug the parser"). Words that are
    also nouns stay names ("Bob", "Mark"), and so does a word in the middle of a
    sentence, where its capital letter marks a name.
    NOTE: a given name that is only a verb or adjective in WordNet ("Harry",
    "Sandy") is dropped when it opens a sentence without such a cue.
    """
    value = text[start:end]
    if len(value.split()) != 1 or not at_sentence_start(text, start):
        return False
    word = value.rstrip(".").lower()
    only_common = _is_common_word(word, common_words) and not any(
        base in nouns for base in _base_forms(word)
    )
    if text[end : end + 1] == ":" and at_line_start(text, start):
        return word in LOG_LABELS or only_common
    if not only_common:
        return False
    after = text[end:].lstrip(" \t")
    if after.startswith(","):
        return False
    next_word = _WORD_SPAN.match(after)
    return next_word is None or next_word.group().lower() not in PERSON_CUES_AFTER


def at_sentence_start(text: str, position: int) -> bool:
    """Check whether only blanks, bullets or quotes stand between `position` and the
    start of the text, a line or a sentence (after ".", "!", "?", ":" or ";")."""
    index = _skip_opening_characters(text, position)
    return index == 0 or text[index - 1] in "\r\n.!?:;"


def at_line_start(text: str, position: int) -> bool:
    """Check whether only blanks, bullets or quotes stand before `position` on its
    line."""
    index = _skip_opening_characters(text, position)
    return index == 0 or text[index - 1] in "\r\n"


def _skip_opening_characters(text: str, position: int) -> int:
    index = position
    while index > 0 and text[index - 1] in _OPENING_CHARACTERS:
        index -= 1
    return index


def _bare_word(text: str, span: tuple[int, int]) -> str:
    return text[span[0] : span[1]].strip(_EDGE_PUNCTUATION + ".").lower()


def _is_lower_case_word(text: str, span: tuple[int, int]) -> bool:
    word = text[span[0] : span[1]]
    return word.islower() and word.strip(_EDGE_PUNCTUATION) not in NAME_PARTICLES


def _is_non_name_word(word: str, common_words: frozenset[str]) -> bool:
    return word in STOP_WORDS or (len(word) > 1 and _is_common_word(word, common_words))


def _base_forms(word: str) -> Iterator[str]:
    """Yield `word` and the stems left after removing a regular inflection."""
    yield word
    for suffix in ("ing", "ed", "d", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix):
            yield word[: -len(suffix)]


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
