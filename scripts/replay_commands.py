"""Subcommands that read recorded sessions: sessions, show, export, resend."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path

from addons.pipeline import Pipeline
from addons.replay import EXPORT_FORMATS
from addons.replay import Recording
from addons.replay import ReplayError
from addons.replay import ResponseTokenizer
from addons.replay import Revealer
from addons.replay import export_recording
from addons.replay import format_counts
from addons.replay import format_entry
from addons.replay import format_time
from addons.replay import read_recording
from addons.replay import resend_flow
from addons.replay import transcript_entries
from vault import Vault
from vault import VaultError
from vault.sessions import list_sessions
from vault.settings import add_vault_arguments

logger = logging.getLogger(__name__)

DEFAULT_DIFF_LINES = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    sessions = subparsers.add_parser(
        "sessions",
        help="list recorded sessions",
        description="List recorded sessions with principal, time span (UTC), flow "
        "count and entity counts.",
    )
    sessions.add_argument("--principal", help="list only this principal's sessions")
    add_vault_arguments(sessions)
    sessions.set_defaults(handler=run_sessions)

    show = subparsers.add_parser(
        "show",
        help="print a session's transcript",
        description="Print a session's transcript, tokenized. With --reveal, tokens "
        "are replaced by their values, and every reveal is written to the audit log.",
    )
    _add_session_arguments(show)
    show.add_argument(
        "--reveal",
        action="store_true",
        help="replace tokens with their values (audited; requires --purpose)",
    )
    show.add_argument("--purpose", help="reason for the reveal, stored in the audit log")
    show.add_argument(
        "--actor",
        default=getpass.getuser(),
        help="investigator named in the audit log (default: the current user)",
    )
    show.set_defaults(handler=run_show)

    export = subparsers.add_parser(
        "export",
        help="write a session to a flow file or HAR",
        description="Write a session's recorded flows, tokenized, to a mitmproxy flow "
        "file (opens with mitmproxy -r / mitmweb -r) or a HAR file.",
    )
    _add_session_arguments(export)
    export.add_argument(
        "--format", choices=EXPORT_FORMATS, default="flows", help="output format"
    )
    export.add_argument(
        "-o", "--output", type=Path, required=True, help="file to write"
    )
    export.set_defaults(handler=run_export)

    resend = subparsers.add_parser(
        "resend",
        help="re-send a session's requests to a model and compare the answers",
        description="Re-send a session's recorded (tokenized) requests directly to a "
        "model server and report, per flow, whether the answer is the same. Each new "
        "response is tokenized as the gateway tokenizes the responses it records, "
        "before it is compared or shown. Exit status: 0 all answers the same, 1 some "
        "differ, 2 an error.",
    )
    _add_session_arguments(resend)
    resend.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="model server base URL, e.g. http://127.0.0.1:8000, to which the "
        "recorded path is appended",
    )
    resend.add_argument(
        "--auth-env",
        metavar="VARIABLE",
        help="environment variable that contains a bearer token for the model server",
    )
    resend.add_argument(
        "--rules",
        type=Path,
        metavar="DIR",
        help="detection rules directory used to tokenize new answers (default: the "
        "rules shipped with tokengate)",
    )
    resend.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for each response (default: 120)",
    )
    resend.add_argument(
        "--diff-lines",
        type=int,
        default=DEFAULT_DIFF_LINES,
        help=f"maximum diff lines shown per flow (default: {DEFAULT_DIFF_LINES})",
    )
    resend.set_defaults(handler=run_resend)


def _add_session_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", help="session id, or a unique beginning of one")
    parser.add_argument(
        "--recordings",
        type=Path,
        help="directory of the session flow files, if they moved since recording",
    )
    add_vault_arguments(parser)


def _open_vault(args: argparse.Namespace) -> Vault:
    return Vault.open(Path(args.vault), Path(args.key_file))


def _find_session(vault: Vault, session: str):
    rows = list_sessions(vault)
    exact = [row for row in rows if row.id == session]
    if exact:
        return exact[0]
    matches = [row for row in rows if row.id.startswith(session)]
    if not matches:
        raise ReplayError(
            f"session {session!r} not found; run `tokengate sessions` to list them"
        )
    if len(matches) > 1:
        raise ReplayError(
            f"session {session!r} matches {len(matches)} sessions; give more of its id"
        )
    return matches[0]


def _recording(row, recordings: Path | None) -> Recording:
    path = Path(row.file)
    if recordings is not None:
        path = recordings / path.name
    return read_recording(path)


def _fail(message: str, status: int = 1) -> int:
    print(f"tokengate: {message}", file=sys.stderr)
    return status


def run_sessions(args: argparse.Namespace) -> int:
    try:
        vault = _open_vault(args)
    except VaultError as exc:
        return _fail(str(exc))
    try:
        rows = [
            row
            for row in list_sessions(vault)
            if args.principal is None or row.principal == args.principal
        ]
    finally:
        vault.close()

    table = [("SESSION", "PRINCIPAL", "STARTED", "LAST", "FLOWS", "ENTITIES")]
    for row in rows:
        table.append(
            (
                row.id,
                row.principal,
                format_time(row.started_at),
                format_time(row.last_at),
                str(row.flow_count),
                format_counts(row.entity_counts),
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(5)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths)]
        print("  ".join(cells + [line[5]]))
    return 0


def run_show(args: argparse.Namespace) -> int:
    if args.reveal and not (args.purpose and args.purpose.strip()):
        return _fail("--reveal requires --purpose, which goes into the audit log", 2)
    if args.reveal and not args.actor.strip():
        return _fail("--actor must name the investigator for the audit log", 2)
    try:
        vault = _open_vault(args)
    except VaultError as exc:
        return _fail(str(exc))
    try:
        row = _find_session(vault, args.session)
        recording = _recording(row, args.recordings)
        revealer = None
        rewrite = str
        if args.reveal:
            revealer = Revealer(vault, row.namespace, args.actor, args.purpose)
            rewrite = revealer.reveal_text
        print(
            f"session {row.id}  principal {row.principal}  namespace {row.namespace}  "
            f"flows {len(recording.flows)}"
        )
        for entry in transcript_entries(recording.flows):
            print(format_entry(entry, rewrite))
        if recording.incomplete_tail:
            print("(the recording ends in an incomplete flow, which is not shown)")
        if revealer is not None:
            print(revealer.summary(), file=sys.stderr)
    except (ReplayError, VaultError) as exc:
        return _fail(str(exc))
    finally:
        vault.close()
    return 0


def run_export(args: argparse.Namespace) -> int:
    try:
        vault = _open_vault(args)
    except VaultError as exc:
        return _fail(str(exc))
    try:
        row = _find_session(vault, args.session)
        recording = _recording(row, args.recordings)
        export_recording(recording.flows, args.output, args.format)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror}")
    except (ReplayError, VaultError) as exc:
        return _fail(str(exc))
    finally:
        vault.close()
    print(f"wrote {len(recording.flows)} flows to {args.output}", file=sys.stderr)
    return 0


def _response_tokenizer(
    vault: Vault, namespace: str, rules: Path | None
) -> ResponseTokenizer:
    """Build the tokenizer for new responses from the gateway's detection and vault."""
    # Imported here because loading spaCy takes seconds that the other commands
    # do not need to spend.
    from addons.detection import DetectionSettings
    from addons.detection import Detector
    from addons.detection import RulesError

    settings = DetectionSettings() if rules is None else DetectionSettings(rules_dir=rules)
    try:
        detector = Detector(settings)
    except RulesError as exc:
        raise ReplayError(f"cannot load detection rules: {exc}") from exc
    pipeline = Pipeline(detector, vault, restore_origins=())
    # The audit log names who ran the resend for the token lookups it causes.
    return ResponseTokenizer(pipeline, namespace, f"resend:{getpass.getuser()}")


def run_resend(args: argparse.Namespace) -> int:
    extra_headers = {}
    if args.auth_env:
        token = os.environ.get(args.auth_env)
        if not token:
            return _fail(f"environment variable {args.auth_env} is not set", 2)
        extra_headers["authorization"] = f"Bearer {token}"
    try:
        vault = _open_vault(args)
    except VaultError as exc:
        return _fail(str(exc), 2)
    differences = 0
    try:
        row = _find_session(vault, args.session)
        recording = _recording(row, args.recordings)
        tokenizer = _response_tokenizer(vault, row.namespace, args.rules)
        for number, flow in enumerate(recording.flows, start=1):
            result = resend_flow(
                flow,
                number,
                args.to,
                tokenizer,
                extra_headers=extra_headers,
                timeout=args.timeout,
            )
            if result.failure:
                return _fail(f"flow {number}: {result.failure}", 2)
            verdict = "same" if result.same else "different"
            print(
                f"flow {number}  {result.method} {result.url}  "
                f"status {result.recorded_status} -> {result.status}  {verdict}"
            )
            if not result.same:
                differences += 1
                for line in result.diff(args.diff_lines):
                    print("    " + line)
    except (ReplayError, VaultError) as exc:
        return _fail(str(exc), 2)
    finally:
        vault.close()
    print(
        f"{len(recording.flows) - differences} same, {differences} different",
        file=sys.stderr,
    )
    return 1 if differences else 0
