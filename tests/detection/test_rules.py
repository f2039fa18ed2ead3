"""Rule file loading: valid files merge, invalid ones fail with file, rule, reason."""

from pathlib import Path

import pytest

from addons.detection import DetectionSettings, Detector
from addons.rules import RulesError, load_rules

VALID_RULE = """
version: 1
entities:
  TICKET_ID: {threshold: 0.4}
recognizers:
  - name: ticket
    entity_type: TICKET_ID
    patterns:
      - {name: ticket, regex: '\\bTCK-\\d{4}\\b', score: 0.9}
"""


def write_rules(directory: Path, text: str, name: str = "site.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(directory: Path) -> str:
    with pytest.raises(RulesError) as raised:
        load_rules(directory)
    return str(raised.value)


def test_rules_valid_file_loads(tmp_path):
    write_rules(tmp_path, VALID_RULE)
    rule_set = load_rules(tmp_path)
    assert [rule.name for rule in rule_set.recognizers] == ["ticket"]
    assert rule_set.thresholds == {"TICKET_ID": 0.4}
    assert rule_set.entities == frozenset({"TICKET_ID"})


def test_rules_invalid_regex_names_file_and_rule(tmp_path):
    path = write_rules(tmp_path, VALID_RULE.replace("\\d{4}", "(\\d{4}"))
    message = load_error(tmp_path)
    assert message.startswith(f"{path}: rule 'ticket': pattern 'ticket': invalid regex")


def test_rules_unknown_validator(tmp_path):
    text = VALID_RULE.replace("    patterns:", "    validator: crc99\n    patterns:")
    path = write_rules(tmp_path, text)
    message = load_error(tmp_path)
    assert message.startswith(f"{path}: rule 'ticket': unknown validator 'crc99'")
    assert "luhn" in message


def test_rules_unknown_key_in_recognizer(tmp_path):
    text = VALID_RULE.replace("    patterns:", "    colour: red\n    patterns:")
    path = write_rules(tmp_path, text)
    message = load_error(tmp_path)
    assert message.startswith(f"{path}: rule 'ticket': unknown key 'colour'")


def test_rules_unknown_top_level_key(tmp_path):
    path = write_rules(tmp_path, VALID_RULE + "extra: 1\n")
    assert load_error(tmp_path).startswith(f"{path}: unknown key 'extra'")


def test_rules_score_out_of_range(tmp_path):
    path = write_rules(tmp_path, VALID_RULE.replace("score: 0.9", "score: 9"))
    message = load_error(tmp_path)
    assert (
        message
        == f"{path}: rule 'ticket': pattern 'ticket' score is 9; must be from 0 to 1"
    )


def test_rules_invalid_yaml_reports_line(tmp_path):
    path = write_rules(tmp_path, "version: 1\nentities: [\n")
    assert load_error(tmp_path).startswith(f"{path}: invalid YAML at line")


def test_rules_duplicate_name_across_files(tmp_path):
    write_rules(tmp_path, VALID_RULE, "a.yaml")
    second = write_rules(tmp_path, VALID_RULE, "b.yaml")
    message = load_error(tmp_path)
    assert message.startswith(f"{second}: rule 'ticket': duplicate name")


def test_rules_unknown_presidio_recognizer(tmp_path):
    path = write_rules(
        tmp_path, VALID_RULE + "presidio_recognizers: [NoSuchRecognizer]\n"
    )
    message = load_error(tmp_path)
    assert message == (
        f"{path}: presidio_recognizers: unknown Presidio recognizer 'NoSuchRecognizer'"
    )


def test_rules_missing_directory(tmp_path):
    missing = tmp_path / "absent"
    assert load_error(missing) == f"{missing}: rules directory not found"


def test_rules_error_message_has_no_traceback(tmp_path):
    write_rules(tmp_path, VALID_RULE.replace("\\d{4}", "(\\d{4}"))
    with pytest.raises(RulesError) as raised:
        Detector(DetectionSettings(rules_dir=tmp_path))
    assert "Traceback" not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_rules_later_file_overrides_threshold(tmp_path):
    write_rules(tmp_path, VALID_RULE, "a.yaml")
    write_rules(
        tmp_path, "version: 1\nentities:\n  TICKET_ID: {threshold: 0.7}\n", "b.yaml"
    )
    assert load_rules(tmp_path).thresholds["TICKET_ID"] == 0.7


def test_rules_disabled_entity_not_acted_on(tmp_path):
    write_rules(tmp_path, VALID_RULE, "a.yaml")
    write_rules(
        tmp_path, "version: 1\nentities:\n  TICKET_ID: {enabled: false}\n", "b.yaml"
    )
    assert load_rules(tmp_path).entities == frozenset()


def test_rules_shipped_files_load():
    rule_set = load_rules(Path(__file__).resolve().parents[2] / "rules")
    assert "SECRET" in rule_set.entities
    assert "CUSTOMER_ID" in rule_set.entities
    assert "DATE_TIME" not in rule_set.entities
