"""Default locations of the vault and its master key, and the shared CLI options."""

import argparse
import math
import os
from pathlib import Path

from vault.tokens import validate_entity_type

HOME_ENV = "TOKENGATE_HOME"
VAULT_ENV = "TOKENGATE_VAULT"
KEY_FILE_ENV = "TOKENGATE_KEY_FILE"

DAY = 86400.0
# Lifetime of a token when neither Vault.open(token_ttl=...) nor the vault's stored
# settings name one for its entity type. None in a mapping means "never expires".
DEFAULT_TOKEN_TTL_SECONDS = 30 * DAY
# The key in a token_ttl mapping that applies to entity types it does not list.
TTL_DEFAULT_KEY = "*"


def default_home() -> Path:
    """Return $TOKENGATE_HOME, or ~/.tokengate when it is unset."""
    value = os.environ.get(HOME_ENV)
    if value:
        return Path(value)
    return Path.home() / ".tokengate"


def default_vault_path() -> Path:
    """Return $TOKENGATE_VAULT, or vault.db in default_home()."""
    value = os.environ.get(VAULT_ENV)
    if value:
        return Path(value)
    return default_home() / "vault.db"


def default_key_file() -> Path:
    """Return $TOKENGATE_KEY_FILE, or master.key in default_home()."""
    value = os.environ.get(KEY_FILE_ENV)
    if value:
        return Path(value)
    return default_home() / "master.key"


def add_vault_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --vault and --key-file, defaulting to the environment or ~/.tokengate."""
    parser.add_argument(
        "--vault",
        type=Path,
        default=default_vault_path(),
        metavar="PATH",
        help=f"vault database file (default: ${VAULT_ENV} or %(default)s)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=default_key_file(),
        metavar="PATH",
        help=f"master key file, mode 0600 (default: ${KEY_FILE_ENV} or %(default)s)",
    )


def parse_ttl(text: str) -> tuple[str, float | None]:
    """Parse ``ENTITY_TYPE=DAYS`` (or ``*=DAYS``; ``never`` for no expiry)."""
    name, separator, days = text.partition("=")
    name = name.strip()
    if not separator or not name:
        raise ValueError(f"invalid token lifetime {text!r}: expected ENTITY_TYPE=DAYS")
    # A lifetime for a name that no token can have would be stored and never apply.
    if name != TTL_DEFAULT_KEY:
        try:
            validate_entity_type(name)
        except ValueError as error:
            raise ValueError(f"invalid token lifetime {text!r}: {error}") from None
    if days.strip().lower() == "never":
        return name, None
    try:
        value = float(days)
    except ValueError:
        raise ValueError(
            f"invalid token lifetime {text!r}: DAYS must be a number or 'never'"
        ) from None
    if not math.isfinite(value):
        raise ValueError(
            f"invalid token lifetime {text!r}: DAYS must be a finite number; use "
            "'never' for no expiry"
        )
    if not value > 0:
        raise ValueError(f"invalid token lifetime {text!r}: DAYS must be above 0")
    return name, value * DAY
