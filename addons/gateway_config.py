"""Gateway settings: mitmproxy options, the YAML config file, and their validation.

Every setting can come from three places. An option set on the command line
(`--set tokengate_model_hosts=...`) wins over the same key in the YAML file named by
`tokengate_config`, which wins over the built-in default. Options default to `None`,
which means "not set here".
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import yaml
from mitmproxy import exceptions
from mitmproxy.proxy import mode_specs
from mitmproxy.utils import human

from vault import settings as vault_settings

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 15.0
DEFAULT_UPSTREAM_KEY_ENV = "TOKENGATE_UPSTREAM_KEY"
SESSION_KEY_FILE_NAME = "gateway-identity.key"

# Token origins that the `policies.restore` setting restores in answers to clients.
RESTORE_POLICIES: dict[str, tuple[str, ...]] = {
    "submitted": ("client",),
    "all": ("client", "model"),
    "none": (),
}

_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FailMode(enum.Enum):
    """Handling of a request when detection or the vault fails or times out."""

    CLOSED = "closed"
    OPEN = "open"


@dataclass(frozen=True)
class ModelHost:
    """A host the gateway forwards to; `port` None matches any port."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        return normalize_host(host) == self.host and self.port in (None, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class OptionSpec:
    """One setting: option name, YAML key and help text."""

    option: str
    key: str
    help: str


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "tokengate_config",
        "",
        "Path of the tokengate YAML config file. Options set with --set override "
        "the file's keys.",
    ),
    OptionSpec(
        "tokengate_model_hosts",
        "model_hosts",
        "Comma-separated model hosts as host or host:port. Requests to any other "
        "host are rejected with 403. Reverse-mode targets and tokengate_upstream "
        "are added automatically.",
    ),
    OptionSpec(
        "tokengate_upstream",
        "upstream",
        "URL of the model server, e.g. http://127.0.0.1:8000. Adds its host and "
        "port to the model hosts.",
    ),
    OptionSpec(
        "tokengate_vault",
        "vault",
        "Path of the vault database. Default: $TOKENGATE_VAULT or "
        "$TOKENGATE_HOME/vault.db (created on first start).",
    ),
    OptionSpec(
        "tokengate_key_file",
        "key_file",
        "Path of the vault master key file. Default: $TOKENGATE_KEY_FILE or "
        "$TOKENGATE_HOME/master.key (created with mode 0600 on first start).",
    ),
    OptionSpec(
        "tokengate_rules",
        "rules",
        "Directory of detection rule files (*.yaml). Default: the rules/ directory "
        "shipped with tokengate.",
    ),
    OptionSpec(
        "tokengate_fail_mode",
        "fail_mode",
        "What to do when detection or the vault fails or times out: 'closed' "
        "(default) rejects the request; 'open' forwards it untokenized and logs an "
        "alert.",
    ),
    OptionSpec(
        "tokengate_upstream_key_env",
        "upstream_key_env",
        "Name of the environment variable that contains the upstream model "
        f"credential. Default: {DEFAULT_UPSTREAM_KEY_ENV}. The config file may set "
        "upstream_key directly instead.",
    ),
    OptionSpec(
        "tokengate_max_body",
        "max_body",
        "Maximum request or response body size, in bytes or with a unit "
        "(e.g. 16m). Larger bodies are rejected with 413. Default: 16m.",
    ),
    OptionSpec(
        "tokengate_timeout",
        "timeout",
        "Time limit in seconds for detection and vault work on one request or "
        f"response. Default: {DEFAULT_TIMEOUT:g}.",
    ),
)

# The recordings directory is an option of the recording addon
# (tokengate_recordings); the gateway applies the config file's value to it.
CONFIG_FILE_KEYS = frozenset(
    {spec.key for spec in OPTION_SPECS if spec.key}
    | {"recordings", "upstream_key", "policies"}
)


@dataclass(frozen=True)
class GatewaySettings:
    """Parsed and validated gateway settings."""

    model_hosts: tuple[ModelHost, ...]
    upstream: str | None
    vault_path: Path
    key_file: Path
    recordings_dir: Path | None
    rules_dir: Path | None
    fail_mode: FailMode
    upstream_key_env: str
    max_body: int
    timeout: float
    upstream_key: str | None = field(default=None, repr=False)
    restore_origins: tuple[str, ...] = ("client",)

    @property
    def identity_key_file(self) -> Path:
        """Secret used to derive principal, namespace and session ids."""
        return self.key_file.with_name(SESSION_KEY_FILE_NAME)

    def is_model_host(self, host: str, port: int) -> bool:
        return any(model_host.matches(host, port) for model_host in self.model_hosts)


def declare_options(loader: Any) -> None:
    """Add the tokengate options to mitmproxy's option manager."""
    for spec in OPTION_SPECS:
        loader.add_option(spec.option, Optional[str], None, spec.help)


def settings_from_options(options: Any, environ: Mapping[str, str] = os.environ) -> GatewaySettings:
    """Build settings from mitmproxy options and the config file they name.

    Raises OptionsError naming the option or config key and the invalid value.
    """
    file_values = read_config_file(options.tokengate_config)

    def value(spec_option: str) -> Any:
        spec = _spec(spec_option)
        current = getattr(options, spec.option)
        if current is not None:
            return current
        return file_values.get(spec.key)

    upstream = parse_upstream(value("tokengate_upstream"))
    model_hosts = list(parse_model_hosts(value("tokengate_model_hosts")))
    if upstream is not None:
        model_hosts.append(model_host_from_url(upstream))
    model_hosts.extend(reverse_mode_hosts(getattr(options, "mode", ())))

    upstream_key_env = parse_env_name(value("tokengate_upstream_key_env"))
    upstream_key = file_values.get("upstream_key")
    if upstream_key is not None and not isinstance(upstream_key, str):
        raise exceptions.OptionsError(
            "Invalid upstream_key in the config file: expected a string."
        )
    if upstream_key is None:
        upstream_key = environ.get(upstream_key_env) or None

    restore_origins = parse_policies(file_values.get("policies", {}))

    return GatewaySettings(
        model_hosts=tuple(dict.fromkeys(model_hosts)),
        upstream=upstream,
        vault_path=parse_path(value("tokengate_vault"), vault_settings.default_vault_path()),
        key_file=parse_path(value("tokengate_key_file"), vault_settings.default_key_file()),
        recordings_dir=parse_path(file_values.get("recordings"), None),
        rules_dir=parse_path(value("tokengate_rules"), None),
        fail_mode=parse_fail_mode(value("tokengate_fail_mode")),
        upstream_key_env=upstream_key_env,
        max_body=parse_max_body(value("tokengate_max_body")),
        timeout=parse_timeout(value("tokengate_timeout")),
        upstream_key=upstream_key,
        restore_origins=restore_origins,
    )


def parse_policies(policies: Any) -> tuple[str, ...]:
    """Return the token origins restored for clients, from the `policies` mapping.

    `restore: submitted` (the default) restores only values the client's namespace
    submitted; `all` also restores values the model produced; `none` restores nothing.
    """
    if not isinstance(policies, Mapping):
        raise exceptions.OptionsError(
            "Invalid policies in the config file: expected a mapping."
        )
    unknown = sorted(set(policies) - {"restore"})
    if unknown:
        raise exceptions.OptionsError(
            f"Unknown key policies.{unknown[0]} in the config file; "
            "the known key is policies.restore."
        )
    restore = policies.get("restore", "submitted")
    if restore not in RESTORE_POLICIES:
        raise exceptions.OptionsError(
            f"Invalid policies.restore {restore!r} in the config file: "
            f"expected one of {', '.join(RESTORE_POLICIES)}."
        )
    return RESTORE_POLICIES[restore]


def read_config_file(path: str | None) -> dict[str, Any]:
    """Read the YAML config file; an unset path gives an empty config."""
    if not path:
        return {}
    config_path = Path(path).expanduser()
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as e:
        raise exceptions.OptionsError(
            f"Cannot read tokengate_config file {config_path}: {e.strerror}."
        ) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise exceptions.OptionsError(
            f"Invalid YAML in tokengate_config file {config_path}: {e}"
        ) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise exceptions.OptionsError(
            f"Invalid tokengate_config file {config_path}: expected a mapping of "
            f"settings, got {type(data).__name__}."
        )
    unknown = sorted(str(key) for key in data if key not in CONFIG_FILE_KEYS)
    if unknown:
        raise exceptions.OptionsError(
            f"Unknown key(s) {', '.join(unknown)} in tokengate_config file "
            f"{config_path}. Known keys: {', '.join(sorted(CONFIG_FILE_KEYS))}."
        )
    return {key: _config_scalar(key, value) for key, value in data.items()}


def _config_scalar(key: str, value: Any) -> Any:
    # YAML gives numbers and lists; the parsers below take the option's string form.
    if key == "model_hosts" and isinstance(value, list):
        return ",".join(str(item) for item in value)
    if key in ("max_body", "timeout") and isinstance(value, (int, float)):
        return str(value)
    return value


def normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def parse_model_hosts(text: Any) -> list[ModelHost]:
    """Parse a comma-separated list of host or host:port entries."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise exceptions.OptionsError(
            f"Invalid tokengate_model_hosts {text!r}: expected host[:port] entries "
            "separated by commas."
        )
    hosts = []
    for entry in text.split(","):
        entry = entry.strip()
        if entry:
            hosts.append(parse_model_host(entry))
    return hosts


def parse_model_host(entry: str) -> ModelHost:
    host, port_text = _split_host_port(entry)
    host = normalize_host(host)
    if not _is_valid_host(host):
        raise exceptions.OptionsError(
            f"Invalid tokengate_model_hosts entry {entry!r}: {host!r} is not a "
            "hostname or IP address."
        )
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise exceptions.OptionsError(
                f"Invalid tokengate_model_hosts entry {entry!r}: port must be a "
                "number from 1 to 65535."
            )
        port = int(port_text)
    return ModelHost(host, port)


def _split_host_port(entry: str) -> tuple[str, str | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, rest.removeprefix(":") if rest else None
    if entry.count(":") > 1:
        return entry, None
    host, sep, port = entry.partition(":")
    return host, port if sep else None


def _is_valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host))
    return True


def parse_upstream(text: Any) -> str | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise exceptions.OptionsError(
            f"Invalid tokengate_upstream {text!r}: expected a URL such as "
            "http://127.0.0.1:8000."
        )
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise exceptions.OptionsError(
            f"Invalid tokengate_upstream {text!r}: expected an http:// or https:// "
            "URL with a host, such as http://127.0.0.1:8000."
        )
    try:
        parts.port
    except ValueError as e:
        raise exceptions.OptionsError(
            f"Invalid tokengate_upstream {text!r}: the port is not a number from "
            "1 to 65535."
        ) from e
    return text


def model_host_from_url(url: str) -> ModelHost:
    parts = urlsplit(url)
    assert parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return ModelHost(normalize_host(parts.hostname), port)


def reverse_mode_hosts(modes: Sequence[str]) -> list[ModelHost]:
    """Targets of `--mode reverse:URL` proxies, which are model hosts by definition."""
    hosts = []
    for spec in modes:
        try:
            mode = mode_specs.ProxyMode.parse(spec)
        except ValueError:
            continue  # mitmproxy's proxyserver addon reports invalid modes itself.
        if isinstance(mode, mode_specs.ReverseMode):
            host, port = mode.address
            hosts.append(ModelHost(normalize_host(host), port))
    return hosts


def parse_path(text: Any, default: Path | None) -> Path | None:
    if text is None or text == "":
        return default
    if not isinstance(text, str):
        raise exceptions.OptionsError(f"Invalid path {text!r}: expected a string.")
    return Path(text).expanduser()


def parse_fail_mode(text: Any) -> FailMode:
    if text is None or text == "":
        return FailMode.CLOSED
    try:
        return FailMode(str(text).strip().lower())
    except ValueError as e:
        raise exceptions.OptionsError(
            f"Invalid tokengate_fail_mode {text!r}: expected 'closed' or 'open'."
        ) from e


def parse_env_name(text: Any) -> str:
    if text is None or text == "":
        return DEFAULT_UPSTREAM_KEY_ENV
    if not isinstance(text, str) or not _ENV_NAME.match(text):
        raise exceptions.OptionsError(
            f"Invalid tokengate_upstream_key_env {text!r}: expected an environment "
            "variable name such as TOKENGATE_UPSTREAM_KEY."
        )
    return text


def parse_max_body(text: Any) -> int:
    if text is None or text == "":
        return DEFAULT_MAX_BODY
    try:
        size = human.parse_size(str(text).strip())
    except ValueError as e:
        raise exceptions.OptionsError(
            f"Invalid tokengate_max_body {text!r}: expected a size in bytes or "
            "with a unit (k, m, g), such as 16m."
        ) from e
    if size is None or size <= 0:
        raise exceptions.OptionsError(
            f"Invalid tokengate_max_body {text!r}: the size must be greater than 0."
        )
    return size


def parse_timeout(text: Any) -> float:
    if text is None or text == "":
        return DEFAULT_TIMEOUT
    try:
        seconds = float(str(text).strip())
    except ValueError as e:
        raise exceptions.OptionsError(
            f"Invalid tokengate_timeout {text!r}: expected a number of seconds."
        ) from e
    if not 0 < seconds < 3600:
        raise exceptions.OptionsError(
            f"Invalid tokengate_timeout {text!r}: expected more than 0 and less "
            "than 3600 seconds."
        )
    return seconds


def _spec(option: str) -> OptionSpec:
    for spec in OPTION_SPECS:
        if spec.option == option:
            return spec
    raise KeyError(option)
