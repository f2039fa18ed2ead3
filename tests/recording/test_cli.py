"""The replay commands, run as the installed `tokengate` program."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from mitmproxy.io import FlowReader

from vault import Vault

from tests.recording.conftest import NAMESPACE
from tests.recording.conftest import TOKENGATE
from tests.recording.conftest import chat_request_body
from tests.recording.conftest import chat_response_body
from tests.recording.conftest import model_flow
from tests.recording.conftest import record_flows


@dataclass
class RecordedSession:
    vault_path: Path
    key_file: Path
    recordings: Path
    person_token: str
    foreign_token: str
    first_answer: str

    def run(self, *args: str, env: dict[str, str] | None = None):
        command = [
            str(TOKENGATE),
            *args,
            "--vault",
            str(self.vault_path),
            "--key-file",
            str(self.key_file),
        ]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **(env or {})},
        )


@pytest.fixture
def session(tmp_path: Path) -> RecordedSession:
    """Record a two-turn chat whose text contains a token of the session's namespace
    and a token of another namespace."""
    vault_path = tmp_path / "vault.db"
    key_file = tmp_path / "master.key"
    recordings = tmp_path / "recordings"

    vault = Vault.open(vault_path, key_file, create=True)
    person = vault.tokenize("Alice Novak", "PERSON", NAMESPACE)
    # The second token of another namespace has no counterpart in NAMESPACE.
    vault.tokenize("Bruno Petit", "PERSON", "ns-other")
    foreign = vault.tokenize("Carla Ruiz", "PERSON", "ns-other")

    first_answer = f"Hello {person}"
    first = model_flow(
        session="chat-1",
        recorded_request=chat_request_body(("user", f"I am {person}, cc {foreign}")),
        recorded_response=chat_response_body(first_answer),
        counts={"PERSON": 1},
    )
    second = model_flow(
        session="chat-1",
        recorded_request=chat_request_body(
            ("user", f"I am {person}, cc {foreign}"),
            ("assistant", first_answer),
            ("user", "Thanks"),
        ),
        recorded_response=chat_response_body("You are welcome"),
        counts={"PERSON": 1},
    )

    asyncio.run(record_flows(vault, recordings, [first, second]))
    vault.close()
    return RecordedSession(
        vault_path, key_file, recordings, person, foreign, first_answer
    )


def test_sessions_lists_session(session):
    result = session.run("sessions")

    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "SESSION",
        "PRINCIPAL",
        "STARTED",
        "LAST",
        "FLOWS",
        "ENTITIES",
    ]
    cells = row.split()
    assert cells[0] == "chat-1"
    assert cells[1] == "alice"
    assert cells[4] == "2"
    assert cells[5] == "PERSON=2"


def test_sessions_filters_principal(session):
    result = session.run("sessions", "--principal", "bob")

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_show_prints_tokenized_transcript(session):
    result = session.run("show", "chat-1")

    assert result.returncode == 0, result.stderr
    assert "Alice Novak" not in result.stdout
    assert f"I am {session.person_token}, cc {session.foreign_token}" in result.stdout
    assert f"Hello {session.person_token}" in result.stdout
    assert "You are welcome" in result.stdout
    assert "--- flow 1" in result.stdout
    assert "--- flow 2" in result.stdout
    assert "(2 earlier messages shown above)" in result.stdout
    assert "POST http://127.0.0.1:8000/v1/chat/completions  200" in result.stdout


def test_show_accepts_unique_prefix(session):
    result = session.run("show", "chat")

    assert result.returncode == 0, result.stderr
    assert "session chat-1" in result.stdout


def test_show_unknown_session(session):
    result = session.run("show", "nope")

    assert result.returncode == 1
    assert "session 'nope' not found" in result.stderr


def test_show_reveal_requires_purpose(session):
    result = session.run("show", "chat-1", "--reveal")

    assert result.returncode == 2
    assert "--reveal requires --purpose" in result.stderr


def test_show_reveal_restores_and_audits(session):
    result = session.run(
        "show", "chat-1", "--reveal", "--purpose", "case 41", "--actor", "inv-1"
    )

    assert result.returncode == 0, result.stderr
    assert "I am Alice Novak, cc " + session.foreign_token in result.stdout
    assert "Hello Alice Novak" in result.stdout
    assert "Carla Ruiz" not in result.stdout
    assert "revealed 1 tokens, denied 1 (namespace=1)" in result.stderr

    vault = Vault.open(session.vault_path, session.key_file)
    try:
        rows = vault.connection().execute(
            "SELECT actor, fields FROM audit_log WHERE event = 'reveal' ORDER BY seq"
        ).fetchall()
    finally:
        vault.close()
    assert len(rows) == 2
    assert [actor for actor, _ in rows] == ["inv-1", "inv-1"]
    assert all("case 41" in fields for _, fields in rows)
    assert all("Alice Novak" not in fields for _, fields in rows)


def test_export_flow_file(session, tmp_path):
    output = tmp_path / "out.flows"

    result = session.run("export", "chat-1", "--format", "flows", "-o", str(output))

    assert result.returncode == 0, result.stderr
    with output.open("rb") as file:
        flows = list(FlowReader(file).stream())
    assert len(flows) == 2
    assert flows[1].metadata["tokengate"]["session"] == "chat-1"
    assert b"Alice Novak" not in output.read_bytes()


def test_export_har(session, tmp_path):
    output = tmp_path / "out.har"

    result = session.run("export", "chat-1", "--format", "har", "-o", str(output))

    assert result.returncode == 0, result.stderr
    har = json.loads(output.read_text())
    entries = har["log"]["entries"]
    assert len(entries) == 2
    assert session.person_token in entries[0]["request"]["postData"]["text"]
    assert entries[0]["response"]["status"] == 200
    assert "Alice Novak" not in output.read_text()


class ModelServer:
    """A chat completions server on 127.0.0.1 that returns the given texts in order."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                server.requests.append((self.path, dict(self.headers), body))
                payload = chat_response_body(server.answers.pop(0))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ModelServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_resend_reports_differences(session):
    with ModelServer([session.first_answer, "Goodbye"]) as server:
        result = session.run(
            "resend",
            "chat-1",
            "--to",
            server.url,
            "--auth-env",
            "TEST_MODEL_KEY",
            env={"TEST_MODEL_KEY": "sk-test-FAKE000"},
        )

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("status 200 -> 200  same")
    assert lines[1].endswith("status 200 -> 200  different")
    assert "    -[assistant] You are welcome" in lines
    assert "    +[assistant] Goodbye" in lines
    assert "1 same, 1 different" in result.stderr
    assert len(server.requests) == 2
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test-FAKE000"
    assert session.person_token.encode() in body
    assert b"Alice Novak" not in body


def test_resend_unreachable_server(session):
    with ModelServer([]) as server:
        url = server.url
    result = session.run("resend", "chat-1", "--to", url, "--timeout", "5")

    assert result.returncode == 2
    assert "flow 1: request to" in result.stderr
