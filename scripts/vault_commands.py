"""`tokengate` subcommands that administer the vault: init, stats, rotate, purge,
erase, verify and reveal."""

import argparse
import getpass
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import asdict

from vault import RevealDenied, Vault, VaultError
from vault import maintenance, rotation
from vault.connections import failed_message
from vault.settings import DAY, add_vault_arguments, parse_ttl

Handler = Callable[[argparse.Namespace], int]

EXIT_ERROR = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the vault subcommands to the `tokengate` parser."""
    parser = _add(subparsers, "init", _init, "create a vault and its master key file")
    parser.add_argument(
        "--ttl",
        action="append",
        default=[],
        metavar="TYPE=DAYS",
        help="token lifetime for an entity type, '*' for all others, 'never' for no "
        "expiry (repeatable; default *=30)",
    )

    parser = _add(subparsers, "stats", _stats, "show token, key and audit counts")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")

    parser = _add(
        subparsers, "rotate", _rotate,
        "make a new data key and re-encrypt every value (resumable), or rotate the "
        "master key with --master",
    )
    parser.add_argument(
        "--master",
        action="store_true",
        help="rotate the master key instead: re-wrap the data keys, write the new key "
        "file and keep the old one as KEY_FILE.old-<time>",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=rotation.DEFAULT_BATCH_SIZE,
        metavar="ROWS",
        help="rows re-encrypted per transaction (default %(default)s)",
    )

    _add(subparsers, "purge", _purge, "delete expired tokens")

    parser = _add(subparsers, "erase", _erase, "delete every token of one namespace")
    parser.add_argument("--namespace", required=True, help="namespace to erase")

    _add(
        subparsers, "verify", _verify,
        "check the audit chain and the database file's integrity",
    )

    parser = _add(
        subparsers, "reveal", _reveal, "print the value of a token (audited)"
    )
    parser.add_argument("token", metavar="TOKEN", help="token text, e.g. [PERSON_13]")
    parser.add_argument("--namespace", required=True, help="namespace of the token")
    parser.add_argument(
        "--purpose", required=True, help="why the value is needed; stored in the audit log"
    )


def _add(
    subparsers: argparse._SubParsersAction, name: str, handler: Handler, summary: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
    add_vault_arguments(parser)
    parser.add_argument(
        "--actor",
        default=_os_user(),
        help="name recorded in the audit log (default: the OS user, %(default)s)",
    )
    parser.set_defaults(handler=_reporting_errors(handler))
    return parser


def _reporting_errors(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (VaultError, ValueError) as error:
            print(f"tokengate {args.command}: error: {error}", file=sys.stderr)
            return EXIT_ERROR
        except sqlite3.DatabaseError as error:
            # Damage in pages that opening the vault did not read shows up here.
            print(
                f"tokengate {args.command}: error: {failed_message(args.vault, error)}",
                file=sys.stderr,
            )
            return EXIT_ERROR
        except BrokenPipeError:
            # The reader of stdout (for example `head`) exited. Point stdout at
            # /dev/null so that the flush at interpreter exit does not raise again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_ERROR

    return run


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _open(args: argparse.Namespace) -> Vault:
    return Vault.open(args.vault, args.key_file)


def _init(args: argparse.Namespace) -> int:
    token_ttl = dict(parse_ttl(text) for text in args.ttl)
    key_existed = args.key_file.exists()
    vault_existed = args.vault.exists() and args.vault.stat().st_size > 0
    if vault_existed:
        raise VaultError(
            f"a vault already exists at {args.vault}; nothing was changed. Use "
            "`tokengate stats` to inspect it"
        )
    with Vault.open(args.vault, args.key_file, create=True) as vault:
        if token_ttl:
            maintenance.store_token_ttl(vault, token_ttl, args.actor)
        vault.audit("init", args.actor, key_file_created=not key_existed)
        ttl = vault.token_ttl
    print(f"created vault {args.vault}")
    if key_existed:
        print(f"using the existing master key in {args.key_file}")
    else:
        print(f"created master key {args.key_file} (mode 0600)")
    print("back up the key file separately from the vault: without it no value can be read")
    print(f"token lifetimes: {_describe_ttl(ttl)}")
    return 0


def _describe_ttl(ttl: dict[str, float | None]) -> str:
    parts = []
    for name, seconds in sorted(ttl.items()):
        parts.append(f"{name}=" + ("never" if seconds is None else f"{seconds / DAY:g} days"))
    return ", ".join(parts)


def _stats(args: argparse.Namespace) -> int:
    with _open(args) as vault:
        stats = maintenance.collect_stats(vault)
    if args.json:
        print(json.dumps(asdict(stats), indent=2, sort_keys=True))
        return 0
    print(f"vault:           {stats.path} ({stats.size_bytes} bytes, schema {stats.schema_version})")
    print(f"tokens:          {stats.tokens} ({stats.expired} expired)")
    for namespace, counts in stats.tokens_by_namespace.items():
        listed = ", ".join(f"{entity_type} {count}" for entity_type, count in counts.items())
        print(f"  {namespace}: {listed}")
    keys_listed = ", ".join(
        f"v{version}: {count} rows" for version, count in sorted(stats.rows_by_data_key.items())
    )
    print(f"data key:        v{stats.active_data_key} active ({keys_listed or 'no rows'})")
    print(f"token lifetimes: {_describe_ttl(stats.token_ttl)}")
    print(f"audit entries:   {stats.audit_entries}")
    print(f"sessions:        {stats.sessions} ({stats.flows} flows)")
    print(f"credentials:     {stats.credentials}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    with _open(args) as vault:
        if args.master:
            backup = rotation.rotate_master_key(vault, args.actor)
            print(f"rotated the master key; the new key is in {args.key_file}")
            print(
                f"the old key is kept in {backup}: backups of the vault made before "
                "now need it. Delete it once those backups have expired"
            )
            return 0
        result = rotation.rotate_data_key(vault, args.actor, batch_size=args.batch_size)
    verb = "resumed rotation to" if result.resumed else "rotated to"
    print(f"{verb} data key v{result.active_version}: {result.reencrypted} values re-encrypted")
    if result.retired_versions:
        retired = ", ".join(f"v{version}" for version in result.retired_versions)
        print(f"deleted retired data keys {retired}")
    return 0


def _purge(args: argparse.Namespace) -> int:
    with _open(args) as vault:
        deleted = maintenance.purge_expired(vault, args.actor)
    print(f"deleted {deleted} expired tokens")
    return 0


def _erase(args: argparse.Namespace) -> int:
    with _open(args) as vault:
        deleted = maintenance.erase_namespace(vault, args.namespace, args.actor)
    print(f"deleted {deleted} tokens of namespace {args.namespace}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    with _open(args) as vault:
        problems = maintenance.integrity_problems(vault)
        try:
            result = vault.verify_audit()
        except sqlite3.DatabaseError as error:
            result = None
            audit_line = f"audit chain: cannot be read: {error} (SQLite)"
    status = 0
    if problems:
        print(f"database integrity check failed: {'; '.join(problems[:10])}")
        status = EXIT_ERROR
    else:
        print("database integrity: ok")
    if result is None:
        status = EXIT_ERROR
    elif result.ok:
        audit_line = f"audit chain: ok, {result.entries} entries, head MAC {result.head_mac}"
    else:
        audit_line = f"audit chain: broken at entry {result.first_bad_seq}: {result.reason}"
        status = EXIT_ERROR
    print(audit_line)
    return status


def _reveal(args: argparse.Namespace) -> int:
    with _open(args) as vault:
        try:
            value = vault.reveal(args.token, args.namespace, args.actor, args.purpose)
        except RevealDenied as denied:
            print(f"tokengate reveal: {denied}", file=sys.stderr)
            return EXIT_ERROR
    print(value)
    return 0


__all__ = ["register"]
