"""An investigator lists and reads a session the running gateway recorded."""

from __future__ import annotations

import subprocess

import openai
import pytest

from .fake_model_server import FakeModelServer
from .harness import ROOT, Gateway, gateway_env

TOKENGATE = ROOT / ".venv" / "bin" / "tokengate"
CLIENT_KEY = "sk-test-FAKE222"
ALICE_EMAIL = "alice.novak@example.test"
SESSION_HEADER_VALUE = "case-review"


@pytest.fixture(scope="module")
def recorded_session(gateway: Gateway, model_server: FakeModelServer) -> Gateway:
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{model_server.port}/v1",
        api_key=CLIENT_KEY,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(proxy=gateway.proxy_url, trust_env=False),
    )
    for turn in ("first", "second"):
        client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": f"{turn}: write to {ALICE_EMAIL}"}],
            extra_headers={"x-tokengate-session": SESSION_HEADER_VALUE},
        )
    return gateway


def tokengate(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TOKENGATE), *args],
        env=gateway_env(gateway.home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def session_id(gateway: Gateway) -> str:
    listing = tokengate(gateway, "sessions").stdout
    (line,) = [line for line in listing.splitlines() if SESSION_HEADER_VALUE in line]
    return line.split()[0]


def test_sessions_lists_recorded_session(recorded_session: Gateway) -> None:
    result = tokengate(recorded_session, "sessions")
    assert result.returncode == 0
    (line,) = [row for row in result.stdout.splitlines() if SESSION_HEADER_VALUE in row]
    assert "EMAIL_ADDRESS" in line
    assert " 2 " in f" {line} "


def test_show_prints_tokenized_transcript(recorded_session: Gateway) -> None:
    result = tokengate(recorded_session, "show", session_id(recorded_session))
    assert result.returncode == 0
    assert "first: write to [EMAIL_ADDRESS_" in result.stdout
    assert "second: write to [EMAIL_ADDRESS_" in result.stdout
    assert ALICE_EMAIL not in result.stdout


def audit_entry_count(gateway: Gateway) -> int:
    stats = tokengate(gateway, "stats").stdout
    (line,) = [row for row in stats.splitlines() if row.startswith("audit entries:")]
    return int(line.split(":")[1])


def test_show_reveal_restores_and_audits(recorded_session: Gateway) -> None:
    session = session_id(recorded_session)
    entries_before = audit_entry_count(recorded_session)
    result = tokengate(
        recorded_session, "show", session, "--reveal", "--purpose", "case 41"
    )
    assert result.returncode == 0
    assert f"first: write to {ALICE_EMAIL}" in result.stdout
    assert audit_entry_count(recorded_session) == entries_before + 1
    verify = tokengate(recorded_session, "verify")
    assert verify.returncode == 0
