"""Loading and validation of the recognizer rule files in `rules/*.yaml`.

Files are read in name order and merged: entity settings of a later file override
those of an earlier one, recognizers and allow-list entries add up. The format is
documented in `rules/README.md`. Any problem raises `RulesError` with the file, the
rule name where there is one, and the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex
import yaml
from presidio_analyzer import EntityRecognizer, predefined_recognizers

from addons.detection_validators import VALIDATORS

logger = logging.getLogger(__name__)

FILE_KEYS = frozenset(
    {"version", "entities", "presidio_recognizers", "recognizers", "allow_list"}
)
ENTITY_KEYS = frozenset({"threshold", "enabled"})
RECOGNIZER_KEYS = frozenset(
    {
        "name",
        "entity_type",
        "patterns",
        "context",
        "validator",
        "deny_list",
        "deny_list_score",
        "ignore_case",
    }
)
PATTERN_KEYS = frozenset({"name", "regex", "score"})
SUPPORTED_VERSION = 1
ENTITY_TYPE_PATTERN = regex.compile(r"[A-Z][A-Z0-9_]*")


class RulesError(Exception):
    """A rule file is missing, unreadable or invalid; the message names the file."""


@dataclass(frozen=True)
class PatternRule:
    name: str
    regex: str
    score: float
    compiled: regex.Pattern[str] = field(compare=False, repr=False)


@dataclass(frozen=True)
class RecognizerRule:
    """A named recognizer defined in a rule file."""

    name: str
    entity_type: str
    patterns: tuple[PatternRule, ...]
    context: tuple[str, ...] = ()
    validator: str | None = None
    deny_list: tuple[str, ...] = ()
    deny_list_score: float = 1.0
    ignore_case: bool = False
    source: Path | None = None


@dataclass
class RuleSet:
    """The merged content of all rule files of a directory."""

    thresholds: dict[str, float] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    presidio_recognizers: list[str] = field(default_factory=list)
    recognizers: list[RecognizerRule] = field(default_factory=list)
    allow_list: set[str] = field(default_factory=set)
    files: list[Path] = field(default_factory=list)

    @property
    def entities(self) -> frozenset[str]:
        """Entity types to act on: those configured and not disabled."""
        return frozenset(set(self.thresholds) - self.disabled)


def load_rules(rules_dir: Path) -> RuleSet:
    """Read and merge every `*.yaml` file in `rules_dir`."""
    if not rules_dir.is_dir():
        raise RulesError(f"{rules_dir}: rules directory not found")
    paths = sorted(rules_dir.glob("*.yaml"))
    if not paths:
        raise RulesError(f"{rules_dir}: no *.yaml rule files in the directory")

    rule_set = RuleSet()
    seen_names: dict[str, Path] = {}
    for path in paths:
        _merge_file(rule_set, path, seen_names)
    logger.info(
        "loaded %d rule files: %d recognizers, %d entity types",
        len(paths),
        len(rule_set.recognizers),
        len(rule_set.entities),
    )
    return rule_set


def _merge_file(rule_set: RuleSet, path: Path, seen_names: dict[str, Path]) -> None:
    document = _read_yaml(path)
    _check_keys(path, None, "file", document, FILE_KEYS)

    version = document.get("version", SUPPORTED_VERSION)
    if version != SUPPORTED_VERSION:
        raise RulesError(
            f"{path}: unsupported version {version!r}; expected {SUPPORTED_VERSION}"
        )

    for entity_type, settings in _mapping(path, "entities", document).items():
        _merge_entity(rule_set, path, entity_type, settings)

    for name in _string_list(path, None, "presidio_recognizers", document):
        recognizer_class = getattr(predefined_recognizers, name, None)
        if not (
            isinstance(recognizer_class, type)
            and issubclass(recognizer_class, EntityRecognizer)
        ):
            raise RulesError(
                f"{path}: presidio_recognizers: unknown Presidio recognizer {name!r}"
            )
        if name not in rule_set.presidio_recognizers:
            rule_set.presidio_recognizers.append(name)

    recognizers = document.get("recognizers", [])
    if not isinstance(recognizers, list):
        raise RulesError(f"{path}: recognizers must be a list")
    for index, item in enumerate(recognizers):
        rule = _parse_recognizer(path, index, item)
        if rule.name in seen_names:
            raise RulesError(
                f"{path}: rule {rule.name!r}: duplicate name, "
                f"already defined in {seen_names[rule.name]}"
            )
        seen_names[rule.name] = path
        rule_set.recognizers.append(rule)

    for word in _string_list(path, None, "allow_list", document):
        rule_set.allow_list.add(word.casefold())
    rule_set.files.append(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError(f"{path}: cannot read file: {error}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise RulesError(f"{path}: invalid YAML{where}: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise RulesError(f"{path}: top level must be a mapping")
    return document


def _merge_entity(
    rule_set: RuleSet, path: Path, entity_type: Any, settings: Any
) -> None:
    _check_entity_type(path, None, entity_type)
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise RulesError(f"{path}: entities.{entity_type} must be a mapping")
    _check_keys(path, None, f"entities.{entity_type}", settings, ENTITY_KEYS)

    threshold = settings.get("threshold", rule_set.thresholds.get(entity_type, 0.5))
    rule_set.thresholds[entity_type] = _score(
        path, None, f"entities.{entity_type}.threshold", threshold
    )
    enabled = settings.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RulesError(f"{path}: entities.{entity_type}.enabled must be true/false")
    if enabled:
        rule_set.disabled.discard(entity_type)
    else:
        rule_set.disabled.add(entity_type)


def _parse_recognizer(path: Path, index: int, item: Any) -> RecognizerRule:
    if not isinstance(item, dict):
        raise RulesError(f"{path}: recognizers[{index}] must be a mapping")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise RulesError(f"{path}: recognizers[{index}]: missing name")
    _check_keys(path, name, "recognizer", item, RECOGNIZER_KEYS)

    entity_type = item.get("entity_type")
    _check_entity_type(path, name, entity_type)

    ignore_case = item.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise RulesError(f"{path}: rule {name!r}: ignore_case must be true/false")
    flags = regex.MULTILINE | (regex.IGNORECASE if ignore_case else 0)

    raw_patterns = item.get("patterns", [])
    if not isinstance(raw_patterns, list):
        raise RulesError(f"{path}: rule {name!r}: patterns must be a list")
    patterns = tuple(
        _parse_pattern(path, name, position, raw, flags)
        for position, raw in enumerate(raw_patterns)
    )
    deny_list = tuple(_string_list(path, name, "deny_list", item))
    if not patterns and not deny_list:
        raise RulesError(f"{path}: rule {name!r}: needs patterns or a deny_list")

    validator = item.get("validator")
    if validator is not None and validator not in VALIDATORS:
        known = ", ".join(sorted(VALIDATORS))
        raise RulesError(
            f"{path}: rule {name!r}: unknown validator {validator!r} "
            f"(known validators: {known})"
        )

    return RecognizerRule(
        name=name,
        entity_type=entity_type,
        patterns=patterns,
        context=tuple(_string_list(path, name, "context", item)),
        validator=validator,
        deny_list=deny_list,
        deny_list_score=_score(
            path, name, "deny_list_score", item.get("deny_list_score", 1.0)
        ),
        ignore_case=ignore_case,
        source=path,
    )


def _parse_pattern(
    path: Path, rule_name: str, position: int, raw: Any, flags: int
) -> PatternRule:
    if not isinstance(raw, dict):
        raise RulesError(
            f"{path}: rule {rule_name!r}: patterns[{position}] must be a mapping"
        )
    _check_keys(path, rule_name, f"patterns[{position}]", raw, PATTERN_KEYS)
    pattern_name = raw.get("name", f"{rule_name}[{position}]")
    source = raw.get("regex")
    if not isinstance(source, str) or not source:
        raise RulesError(
            f"{path}: rule {rule_name!r}: pattern {pattern_name!r}: missing regex"
        )
    try:
        compiled = regex.compile(source, flags)
    except regex.error as error:
        raise RulesError(
            f"{path}: rule {rule_name!r}: pattern {pattern_name!r}: "
            f"invalid regex: {error}"
        ) from None
    score = _score(path, rule_name, f"pattern {pattern_name!r} score", raw.get("score"))
    return PatternRule(name=pattern_name, regex=source, score=score, compiled=compiled)


def _check_keys(
    path: Path, rule_name: str | None, where: str, item: Mapping, allowed: frozenset
) -> None:
    unknown = sorted(str(key) for key in item if key not in allowed)
    if unknown:
        prefix = f"{path}: rule {rule_name!r}" if rule_name else f"{path}"
        raise RulesError(
            f"{prefix}: unknown key {unknown[0]!r} in {where} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _check_entity_type(path: Path, rule_name: str | None, entity_type: Any) -> None:
    if not isinstance(entity_type, str) or not ENTITY_TYPE_PATTERN.fullmatch(
        entity_type
    ):
        prefix = f"{path}: rule {rule_name!r}" if rule_name else f"{path}"
        raise RulesError(
            f"{prefix}: invalid entity type {entity_type!r}; "
            "use upper case letters, digits and '_', e.g. CUSTOMER_ID"
        )


def _score(path: Path, rule_name: str | None, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        prefix = f"{path}: rule {rule_name!r}" if rule_name else f"{path}"
        raise RulesError(f"{prefix}: {where} must be a number from 0 to 1")
    if not 0.0 <= value <= 1.0:
        prefix = f"{path}: rule {rule_name!r}" if rule_name else f"{path}"
        raise RulesError(f"{prefix}: {where} is {value}; must be from 0 to 1")
    return float(value)


def _mapping(path: Path, key: str, document: Mapping) -> dict:
    value = document.get(key) or {}
    if not isinstance(value, dict):
        raise RulesError(f"{path}: {key} must be a mapping")
    return value


def _string_list(
    path: Path, rule_name: str | None, key: str, document: Mapping
) -> list[str]:
    value = document.get(key) or []
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item for item in value
    ):
        prefix = f"{path}: rule {rule_name!r}" if rule_name else f"{path}"
        raise RulesError(f"{prefix}: {key} must be a list of non-empty strings")
    return value
