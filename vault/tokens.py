"""Token text: the one place that formats, parses and finds tokens in text.

A token is written from a template such as ``[{entity_type}_{id}]``. The id is the
token's serial in its (namespace, entity type) followed by one Damm check digit, so a
token that a model copied with one wrong or two swapped digits no longer validates.
Every regular expression here is assembled from ``re.escape``d template literals.
"""

import re
from dataclasses import dataclass

ENTITY_TYPE_PLACEHOLDER = "{entity_type}"
ID_PLACEHOLDER = "{id}"
DEFAULT_TEMPLATE = "[{entity_type}_{id}]"

# Upper bound on the entity type length that find() and prefix_holdback() consider.
MAX_ENTITY_TYPE_LENGTH = 48
# Upper bound on the id length: 19 digits of serial (fits SQLite INTEGER) plus check.
MAX_ID_LENGTH = 20

_ENTITY_TYPE_RE = re.compile(r"[A-Z][A-Z0-9_]*\Z")

# Damm's quasigroup of order 10 (H. M. Damm, "Totally anti-symmetric quasigroups for
# all orders n != 2, 6", 2007). It detects every single-digit error and every
# transposition of adjacent digits.
_DAMM_TABLE = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_check_digit(digits: str) -> str:
    """Return the Damm check digit for a string of ASCII digits."""
    interim = 0
    for digit in digits:
        interim = _DAMM_TABLE[interim][ord(digit) - 48]
    return str(interim)


def is_valid_id(token_id: str) -> bool:
    """Tell whether `token_id` is a serial without leading zero plus its check digit."""
    if len(token_id) < 2 or not token_id.isascii() or not token_id.isdigit():
        return False
    if token_id[0] == "0":
        return False
    return damm_check_digit(token_id) == "0"


def validate_entity_type(entity_type: str) -> str:
    """Return `entity_type` if it is a canonical entity type name, else raise."""
    if len(entity_type) > MAX_ENTITY_TYPE_LENGTH or not _ENTITY_TYPE_RE.match(
        entity_type
    ):
        raise ValueError(
            f"invalid entity type {entity_type!r}: expected upper-case letters, digits "
            f"and underscores starting with a letter, at most {MAX_ENTITY_TYPE_LENGTH} "
            "characters"
        )
    return entity_type


@dataclass(frozen=True)
class TokenMatch:
    """A token found in text: its span, canonical form and whether it validates."""

    start: int
    end: int
    entity_type: str
    token: str
    valid: bool

    @property
    def serial(self) -> int | None:
        """The serial encoded in the token, or None when the check digit fails."""
        if not self.valid:
            return None
        return _serial_of(self.token)


def _serial_of(token: str) -> int:
    digits = re.search(r"([0-9]+)[^0-9]*\Z", token)
    assert digits is not None
    return int(digits.group(1)[:-1])


class TokenFormat:
    """Token text built from a template with ``{entity_type}`` and ``{id}``.

    The template must start with a literal, separate the two placeholders with a
    literal and end with a literal, for example ``[{entity_type}_{id}]`` or
    ``<<{entity_type}:{id}>>``, so that tokens can be found inside running text.
    """

    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        self.template = template
        self.prefix, self.separator, self.suffix = _split_template(template)
        prefix = re.escape(self.prefix)
        separator = re.escape(self.separator)
        suffix = re.escape(self.suffix)

        self._strict = re.compile(
            f"{prefix}(?P<type>[A-Z][A-Z0-9_]{{0,{MAX_ENTITY_TYPE_LENGTH - 1}}})"
            f"{separator}(?P<id>[0-9]{{2,{MAX_ID_LENGTH}}}){suffix}"
        )
        # Lenient: any case, blanks around each part, and at most one of the outer
        # literals missing. Without the prefix the entity type must start a word, and
        # without the suffix the id must not run on into more word characters.
        blank = r"[ \t]*"
        with_prefix = _lenient_core(separator, "type", "id")
        without_prefix = _lenient_core(separator, "type2", "id2")
        self._lenient = re.compile(
            f"{prefix}{blank}{with_prefix}(?:{blank}{suffix}|(?![0-9A-Za-z_]))"
            f"|(?<![0-9A-Za-z_]){without_prefix}{blank}{suffix}",
            re.IGNORECASE,
        )
        self._open_body = {
            (lenient, need_separator): self._compile_open_body(lenient, need_separator)
            for lenient in (False, True)
            for need_separator in (False, True)
        }

    def _compile_open_body(self, lenient: bool, need_separator: bool) -> re.Pattern[str]:
        """Compile a pattern for a token body cut off before its suffix completed."""
        blank = r"[ \t]*" if lenient else ""
        letters = "A-Za-z" if lenient else "A-Z"
        entity_type = f"[{letters}][{letters}0-9_]{{0,{MAX_ENTITY_TYPE_LENGTH - 1}}}"
        suffix_start = _proper_prefixes(self.suffix)
        after_separator = f"{blank}[0-9]{{0,{MAX_ID_LENGTH}}}{blank}{suffix_start}"
        separator_part = (
            f"{blank}(?:{re.escape(self.separator)}(?:{after_separator})?"
            f"|{_proper_prefixes(self.separator)})"
        )
        if need_separator:
            pattern = f"{blank}{entity_type}{blank}{re.escape(self.separator)}"
            pattern += f"(?:{after_separator})?"
        else:
            pattern = f"{blank}(?:{entity_type}(?:{separator_part})?)?"
        return re.compile(pattern, re.IGNORECASE if lenient else 0)

    def __repr__(self) -> str:
        return f"TokenFormat({self.template!r})"

    def format(self, entity_type: str, serial: int) -> str:
        """Return the token text for `serial` in `entity_type`."""
        validate_entity_type(entity_type)
        if isinstance(serial, bool) or not isinstance(serial, int) or serial < 1:
            raise ValueError(f"invalid serial {serial!r}: expected an integer >= 1")
        digits = str(serial)
        return (
            f"{self.prefix}{entity_type}{self.separator}"
            f"{digits}{damm_check_digit(digits)}{self.suffix}"
        )

    def parse(self, text: str) -> TokenMatch | None:
        """Parse `text` as exactly one canonical token, or return None."""
        match = self._strict.fullmatch(text)
        if match is None:
            return None
        return self._to_match(match, match.group("type"), match.group("id"))

    def find(self, text: str, lenient: bool = False) -> list[TokenMatch]:
        """Find the tokens in `text`, in order and without overlaps.

        Strict search finds canonical tokens only. Lenient search also finds tokens
        whose case changed, that gained blanks between their parts, or that lost one
        of the outer literals. A match whose check digit fails has ``valid=False``;
        callers must not restore it.
        """
        if not lenient:
            return [
                self._to_match(match, match.group("type"), match.group("id"))
                for match in self._strict.finditer(text)
            ]

        matches = []
        for match in self._lenient.finditer(text):
            entity_type = match.group("type") or match.group("type2")
            token_id = match.group("id") or match.group("id2")
            matches.append(self._to_match(match, entity_type.upper(), token_id))
        return matches

    def prefix_holdback(self, text: str, lenient: bool = True) -> int:
        """Return how many trailing characters of `text` may begin a token.

        A stream rewriter keeps these back until more text arrives, so that a token
        split across chunks is still found, e.g. ``"Hi [PERS"`` gives 5. With
        `lenient`, a case-changed or blank-padded beginning counts, and so does a
        word that already reached the separator without the prefix (``"PERSON_1"``).
        """
        window = len(self.prefix) + MAX_ENTITY_TYPE_LENGTH + len(self.separator)
        window += MAX_ID_LENGTH + len(self.suffix) + 16
        first = max(0, len(text) - window)
        for start in range(first, len(text)):
            if self._could_begin_token(text, start, lenient):
                return len(text) - start
        return 0

    def _could_begin_token(self, text: str, start: int, lenient: bool) -> bool:
        tail = text[start:]
        if not tail:
            return False
        if _is_open_prefix(tail, self.prefix, lenient):
            return True
        if tail[0] == self.prefix[0] or (
            lenient and tail[0].lower() == self.prefix[0].lower()
        ):
            rest = tail[len(self.prefix) :]
            if _casefit(tail[: len(self.prefix)], self.prefix, lenient):
                return self._is_open_body(rest, lenient, need_separator=False)
        if not lenient:
            return False
        # Lenient only: a token whose prefix was lost, once its separator arrived.
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            return False
        return self._is_open_body(tail, lenient, need_separator=True)

    def _is_open_body(self, body: str, lenient: bool, need_separator: bool) -> bool:
        """Tell whether `body` is an unfinished ``type SEP id SUFFIX`` sequence."""
        return self._open_body[lenient, need_separator].fullmatch(body) is not None

    def _to_match(self, match: re.Match[str], entity_type: str, token_id: str) -> TokenMatch:
        valid = is_valid_id(token_id) and len(entity_type) <= MAX_ENTITY_TYPE_LENGTH
        if valid:
            token = (
                f"{self.prefix}{entity_type}{self.separator}{token_id}{self.suffix}"
            )
        else:
            token = match.group(0)
        return TokenMatch(
            start=match.start(),
            end=match.end(),
            entity_type=entity_type,
            token=token,
            valid=valid,
        )


def _split_template(template: str) -> tuple[str, str, str]:
    if template.count(ENTITY_TYPE_PLACEHOLDER) != 1 or template.count(ID_PLACEHOLDER) != 1:
        raise ValueError(
            f"invalid token template {template!r}: it must contain {{entity_type}} and "
            "{id} exactly once each"
        )
    prefix, rest = template.split(ENTITY_TYPE_PLACEHOLDER)
    if ID_PLACEHOLDER not in rest:
        raise ValueError(
            f"invalid token template {template!r}: {{entity_type}} must come before {{id}}"
        )
    separator, suffix = rest.split(ID_PLACEHOLDER)
    for name, literal in (("prefix", prefix), ("separator", separator), ("suffix", suffix)):
        if not literal:
            raise ValueError(
                f"invalid token template {template!r}: the {name} literal is empty; "
                "tokens need a literal before, between and after the placeholders"
            )
        if any(char.isalnum() or char.isspace() for char in literal):
            raise ValueError(
                f"invalid token template {template!r}: the {name} literal {literal!r} "
                "must not contain letters, digits or blanks"
            )
    return prefix, separator, suffix


def _lenient_core(separator: str, type_group: str, id_group: str) -> str:
    blank = r"[ \t]*"
    return (
        f"(?P<{type_group}>[A-Za-z][A-Za-z0-9_]{{0,{MAX_ENTITY_TYPE_LENGTH - 1}}})"
        f"{blank}{separator}{blank}(?P<{id_group}>[0-9]{{2,{MAX_ID_LENGTH}}})"
    )


def _proper_prefixes(literal: str) -> str:
    """Return an optional regex group for any proper beginning of `literal`."""
    prefixes = [re.escape(literal[:length]) for length in range(len(literal) - 1, 0, -1)]
    if not prefixes:
        return ""
    return f"(?:{'|'.join(prefixes)})?"


def _casefit(text: str, literal: str, lenient: bool) -> bool:
    if lenient:
        return text.lower() == literal.lower()
    return text == literal


def _is_open_prefix(tail: str, prefix: str, lenient: bool) -> bool:
    """Tell whether `tail` is a proper beginning of the prefix literal."""
    if len(tail) >= len(prefix):
        return False
    return _casefit(tail, prefix[: len(tail)], lenient)


DEFAULT_FORMAT = TokenFormat()
