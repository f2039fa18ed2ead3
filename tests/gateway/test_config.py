"""Parsing and validation of the gateway's options and YAML config file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from mitmproxy.exceptions import OptionsError

from addons import gateway_config
from addons.gateway_config import (
    DEFAULT_MAX_BODY,
    FailMode,
    ModelHost,
    parse_max_body,
    parse_model_hosts,
    parse_timeout,
    settings_from_options,
)


def options(**values: object) -> SimpleNamespace:
    defaults = {spec.option: None for spec in gateway_config.OPTION_SPECS}
    defaults["mode"] = ["regular"]
    defaults.update(values)
    return SimpleNamespace(**defaults)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models.internal", [ModelHost("models.internal")]),
        ("Models.Internal.:8000", [ModelHost("models.internal", 8000)]),
        ("a:1, b", [ModelHost("a", 1), ModelHost("b")]),
        ("[::1]:8443", [ModelHost("::1", 8443)]),
        ("::1", [ModelHost("::1")]),
        ("10.0.0.7:11434", [ModelHost("10.0.0.7", 11434)]),
    ],
)
def test_model_hosts_parsed(text: str, expected: list[ModelHost]) -> None:
    assert parse_model_hosts(text) == expected


@pytest.mark.parametrize("entry", ["host:0", "host:70000", "host:http", "bad host", "a/b"])
def test_model_hosts_invalid_entry_named(entry: str) -> None:
    with pytest.raises(OptionsError, match="tokengate_model_hosts entry"):
        parse_model_hosts(entry)


def test_model_host_without_port_matches_any_port() -> None:
    assert ModelHost("models.internal").matches("MODELS.internal", 443)


def test_model_host_with_port_matches_only_that_port() -> None:
    host = ModelHost("models.internal", 8000)
    assert host.matches("models.internal", 8000)
    assert not host.matches("models.internal", 8001)


def test_max_body_units() -> None:
    assert parse_max_body(None) == DEFAULT_MAX_BODY
    assert parse_max_body("16m") == 16 * 1024 * 1024
    assert parse_max_body("1000") == 1000


@pytest.mark.parametrize("text", ["0", "lots", "-5"])
def test_max_body_invalid_named(text: str) -> None:
    with pytest.raises(OptionsError, match=f"Invalid tokengate_max_body '{text}'"):
        parse_max_body(text)


@pytest.mark.parametrize("text", ["0", "soon", "-1", "7200"])
def test_timeout_invalid_named(text: str) -> None:
    with pytest.raises(OptionsError, match=f"Invalid tokengate_timeout '{text}'"):
        parse_timeout(text)


def test_upstream_adds_model_host() -> None:
    settings = settings_from_options(options(tokengate_upstream="http://127.0.0.1:8000"), {})
    assert settings.model_hosts == (ModelHost("127.0.0.1", 8000),)


def test_upstream_default_port_from_scheme() -> None:
    settings = settings_from_options(options(tokengate_upstream="https://models.internal"), {})
    assert settings.model_hosts == (ModelHost("models.internal", 443),)


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://host", "http://", "http://h:99999"])
def test_upstream_invalid_named(url: str) -> None:
    with pytest.raises(OptionsError, match="Invalid tokengate_upstream"):
        settings_from_options(options(tokengate_upstream=url), {})


def test_reverse_mode_target_is_model_host() -> None:
    settings = settings_from_options(options(mode=["reverse:http://10.1.2.3:8080"]), {})
    assert settings.model_hosts == (ModelHost("10.1.2.3", 8080),)


def test_fail_mode_default_closed_and_invalid_named() -> None:
    assert settings_from_options(options(), {}).fail_mode is FailMode.CLOSED
    with pytest.raises(OptionsError, match="Invalid tokengate_fail_mode 'sometimes'"):
        settings_from_options(options(tokengate_fail_mode="sometimes"), {})


def test_upstream_key_read_from_named_env_var() -> None:
    settings = settings_from_options(
        options(tokengate_upstream_key_env="MODEL_KEY"), {"MODEL_KEY": "sk-upstream"}
    )
    assert settings.upstream_key == "sk-upstream"
    assert "sk-upstream" not in repr(settings)


def test_config_file_values_used(tmp_path: Path) -> None:
    config = tmp_path / "tokengate.yaml"
    config.write_text(
        "model_hosts: [models.internal:8000, 10.0.0.7]\n"
        "max_body: 1024\n"
        "timeout: 2.5\n"
        f"vault: {tmp_path / 'v.db'}\n"
        "upstream_key: sk-from-file\n"
        "policies: {restore: all}\n"
    )
    settings = settings_from_options(options(tokengate_config=str(config)), {})
    assert settings.model_hosts == (ModelHost("models.internal", 8000), ModelHost("10.0.0.7"))
    assert settings.max_body == 1024
    assert settings.timeout == 2.5
    assert settings.vault_path == tmp_path / "v.db"
    assert settings.upstream_key == "sk-from-file"
    assert settings.restore_origins == ("client", "model")


def test_restore_policy_default_submitted() -> None:
    settings = settings_from_options(options(), {})
    assert settings.restore_origins == ("client",)


@pytest.mark.parametrize(
    ("policies", "named"),
    [("{restore: everyone}", "'everyone'"), ("{reveal: all}", "policies.reveal")],
)
def test_restore_policy_invalid_named(tmp_path: Path, policies: str, named: str) -> None:
    config = tmp_path / "tokengate.yaml"
    config.write_text(f"policies: {policies}\n")
    with pytest.raises(OptionsError, match=named):
        settings_from_options(options(tokengate_config=str(config)), {})


def test_option_overrides_config_file(tmp_path: Path) -> None:
    config = tmp_path / "tokengate.yaml"
    config.write_text("max_body: 1024\nfail_mode: open\n")
    settings = settings_from_options(
        options(tokengate_config=str(config), tokengate_max_body="2048"), {}
    )
    assert settings.max_body == 2048
    assert settings.fail_mode is FailMode.OPEN


def test_config_file_unknown_key_named(tmp_path: Path) -> None:
    config = tmp_path / "tokengate.yaml"
    config.write_text("max_bdy: 10\n")
    with pytest.raises(OptionsError, match="Unknown key\\(s\\) max_bdy"):
        settings_from_options(options(tokengate_config=str(config)), {})


def test_config_file_missing_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(OptionsError, match=f"Cannot read tokengate_config file {missing}"):
        settings_from_options(options(tokengate_config=str(missing)), {})


def test_config_file_not_mapping_rejected(tmp_path: Path) -> None:
    config = tmp_path / "tokengate.yaml"
    config.write_text("- a\n- b\n")
    with pytest.raises(OptionsError, match="expected a mapping of settings, got list"):
        settings_from_options(options(tokengate_config=str(config)), {})
