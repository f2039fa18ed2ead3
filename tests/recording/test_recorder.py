"""The Recorder addon: what a recording contains and where it goes."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import pytest
from mitmproxy import exceptions
from mitmproxy.flow import Error
from mitmproxy.io import FlowReader
from mitmproxy.test import taddons

from addons.recording import FlowFileAppender
from addons.recording import Recorder
from addons.recording import is_credential_name
from addons.recording import recorded_copy
from addons.recording import session_file_name
from addons.replay import read_recording
from vault.sessions import list_sessions
from vault.sessions import session_flows

from tests.recording.conftest import NAMESPACE
from tests.recording.conftest import PRINCIPAL
from tests.recording.conftest import model_flow

MITMDUMP = Path(sys.executable).with_name("mitmdump")

pytestmark = pytest.mark.anyio


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    return tmp_path / "recordings"


@pytest.fixture
def recorder(vault, recordings):
    addon = Recorder(lambda: vault)
    with taddons.context(addon) as tctx:
        tctx.configure(addon, tokengate_recordings=str(recordings))
        yield addon


def read_flows(path: Path):
    with path.open("rb") as file:
        return list(FlowReader(file).stream())


async def test_recorder_strips_credential_headers(recorder, recordings):
    flow = model_flow(
        request_headers=[
            (b"Authorization", b"Bearer sk-test-FAKE000"),
            (b"Proxy-Authorization", b"Basic FAKE"),
            (b"x-api-key", b"FAKE111"),
            (b"api-key", b"FAKE222"),
            (b"Cookie", b"sid=FAKE333"),
            (b"x-goog-api-key", b"FAKE444"),
            (b"X-Amz-Security-Token", b"FAKE555"),
            (b"client-secret", b"FAKE666"),
            (b"User-Agent", b"OpenAI/Python"),
        ],
        response_headers=[
            (b"Set-Cookie", b"sid=FAKE777"),
            (b"x-request-id", b"r1"),
        ],
    )

    await recorder.response(flow)

    data = (recordings / "s1.flows").read_bytes()
    for value in (b"sk-test-FAKE000", b"FAKE111", b"FAKE222", b"FAKE333", b"FAKE444"):
        assert value not in data
    for value in (b"FAKE555", b"FAKE666", b"FAKE777", b"Basic FAKE"):
        assert value not in data
    (recorded,) = read_flows(recordings / "s1.flows")
    assert recorded.request.headers.get("user-agent") == "OpenAI/Python"
    assert recorded.response.headers.get("x-request-id") == "r1"
    assert "authorization" not in recorded.request.headers
    assert "set-cookie" not in recorded.response.headers


async def test_recorder_strips_credential_query(recorder, recordings):
    flow = model_flow(path=b"/v1/chat/completions?api_key=FAKE888&stream=false")

    await recorder.response(flow)

    assert b"FAKE888" not in (recordings / "s1.flows").read_bytes()
    (recorded,) = read_flows(recordings / "s1.flows")
    assert recorded.request.path == "/v1/chat/completions?stream=false"


async def test_recorder_writes_tokenized_bodies(recorder, recordings):
    flow = model_flow(
        raw_request=b'{"q": "I am Alice Novak"}',
        recorded_request=b'{"q": "I am [PERSON_12]"}',
        raw_response=b'{"a": "Hi Alice Novak"}',
        recorded_response=b'{"a": "Hi [PERSON_12]"}',
    )
    flow.backup()
    flow.request.content = b'{"q": "changed Alice Novak"}'

    await recorder.response(flow)

    data = (recordings / "s1.flows").read_bytes()
    assert b"Alice Novak" not in data
    (recorded,) = read_flows(recordings / "s1.flows")
    assert recorded.request.content == b'{"q": "I am [PERSON_12]"}'
    assert recorded.response.content == b'{"a": "Hi [PERSON_12]"}'
    assert recorded.request.headers["content-length"] == "25"


async def test_recorder_missing_recorded_response(recorder, recordings):
    flow = model_flow(raw_response=b'{"a": "Hi Alice Novak"}', recorded_response=None)

    await recorder.response(flow)

    assert b"Alice Novak" not in (recordings / "s1.flows").read_bytes()
    (recorded,) = read_flows(recordings / "s1.flows")
    assert recorded.response.status_code == 200
    assert recorded.response.raw_content is None


async def test_recorder_gzip_response_stored_decoded(recorder, recordings):
    flow = model_flow(response_headers=[(b"content-encoding", b"gzip")])

    await recorder.response(flow)

    (recorded,) = read_flows(recordings / "s1.flows")
    assert "content-encoding" not in recorded.response.headers
    assert recorded.response.raw_content == b'{"recorded": "response"}'


async def test_recorder_metadata(recorder, recordings):
    flow = model_flow(counts={"PERSON": 2, "EMAIL_ADDRESS": 1}, decisions=["tokenized"])
    flow.metadata["proxyauth"] = ("alice", "FAKE999")

    await recorder.response(flow)

    assert b"FAKE999" not in (recordings / "s1.flows").read_bytes()
    (recorded,) = read_flows(recordings / "s1.flows")
    assert recorded.metadata == {
        "tokengate": {
            "principal": PRINCIPAL,
            "namespace": NAMESPACE,
            "session": "s1",
            "shape": "openai_chat",
            "counts": {"PERSON": 2, "EMAIL_ADDRESS": 1},
            "decisions": ["tokenized"],
        }
    }


async def test_recorder_one_file_per_session(recorder, recordings):
    await recorder.response(model_flow(session="s1"))
    await recorder.response(model_flow(session="s2"))
    await recorder.response(model_flow(session="s1"))

    assert sorted(p.name for p in recordings.iterdir()) == ["s1.flows", "s2.flows"]
    assert len(read_flows(recordings / "s1.flows")) == 2
    assert len(read_flows(recordings / "s2.flows")) == 1
    assert (recordings / "s1.flows").stat().st_mode & 0o777 == 0o600
    assert recordings.stat().st_mode & 0o777 == 0o700


async def test_recorder_records_flow_once(recorder, recordings):
    flow = model_flow()

    await recorder.response(flow)
    await recorder.error(flow)

    assert len(read_flows(recordings / "s1.flows")) == 1
    assert recorder.recorded == 1


async def test_recorder_ignores_flows_without_metadata(recorder, recordings):
    flow = model_flow()
    del flow.metadata["tokengate"]

    await recorder.response(flow)

    assert list(recordings.iterdir()) == []
    assert recorder.recorded == 0
    assert recorder.failures == 0


async def test_recorder_records_errored_flow(recorder, recordings):
    flow = model_flow(raw_response=None)
    flow.error = Error("connection refused")

    await recorder.error(flow)

    (recorded,) = read_flows(recordings / "s1.flows")
    assert recorded.response is None
    assert recorded.error.msg == "connection refused"


async def test_recorder_unsafe_session_id(recorder, recordings):
    await recorder.response(model_flow(session="../../etc/passwd"))

    (path,) = recordings.iterdir()
    assert path.name == session_file_name("../../etc/passwd")
    assert path.name.startswith("session-")
    assert len(read_flows(path)) == 1


async def test_recorder_indexes_in_vault(recorder, recordings, vault):
    first = model_flow(counts={"PERSON": 1})
    second = model_flow(counts={"PERSON": 2, "EMAIL_ADDRESS": 1})

    await recorder.response(first)
    await recorder.response(second)

    (session,) = list_sessions(vault)
    assert session.id == "s1"
    assert session.principal == PRINCIPAL
    assert session.namespace == NAMESPACE
    assert session.flow_count == 2
    assert session.entity_counts == {"PERSON": 3, "EMAIL_ADDRESS": 1}
    assert session.file == str(recordings.resolve() / "s1.flows")
    flows = session_flows(vault, "s1")
    assert [row.id for row in flows] == [first.id, second.id]
    assert flows[0].method == "POST"
    assert flows[0].status == 200
    assert flows[0].url == "http://127.0.0.1:8000/v1/chat/completions"


async def test_recorder_failure_withholds_answer(recordings):
    addon = Recorder(lambda: None)
    with taddons.context(addon) as tctx:
        tctx.configure(addon, tokengate_recordings=str(recordings))
        flow = model_flow()

        await addon.response(flow)

    assert addon.failures == 1
    assert addon.recorded == 0
    assert flow.response.status_code == 503
    error = json.loads(flow.response.content)["error"]
    assert error["code"] == "recording_failed"


async def test_recorder_failure_passes_when_not_required(recordings):
    addon = Recorder(lambda: None)
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon,
            tokengate_recordings=str(recordings),
            tokengate_require_recording=False,
        )
        flow = model_flow()

        await addon.response(flow)

    assert addon.failures == 1
    assert flow.response.status_code == 200
    assert flow.response.content == b'{"raw": "response"}'


async def test_recorder_failure_after_stream_keeps_response(recordings):
    addon = Recorder(lambda: None)
    with taddons.context(addon) as tctx:
        tctx.configure(addon, tokengate_recordings=str(recordings))
        flow = model_flow()
        flow.response.stream = True

        await addon.response(flow)

    assert addon.failures == 1
    assert flow.response.status_code == 200


def test_recorder_rejects_file_as_directory(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    addon = Recorder(lambda: None)
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="not a directory"):
            tctx.configure(addon, tokengate_recordings=str(not_a_directory))


def test_recorder_default_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENGATE_HOME", str(tmp_path / "home"))
    addon = Recorder(lambda: None)
    with taddons.context(addon) as tctx:
        tctx.configure(addon)

    assert addon.directory == (tmp_path / "home" / "recordings").resolve()
    assert addon.directory.is_dir()


def test_recorder_uses_declared_option(tmp_path):
    directory = tmp_path / "from-gateway"

    class DeclaresRecordings:
        def load(self, loader):
            loader.add_option("tokengate_recordings", Optional[str], None, "help")

    addon = Recorder(lambda: None)
    with taddons.context(DeclaresRecordings(), addon) as tctx:
        tctx.configure(addon, tokengate_recordings=str(directory))

    assert addon.directory == directory.resolve()
    assert tctx.options._options["tokengate_recordings"].help == "help"


def test_credential_names():
    assert is_credential_name("Authorization")
    assert is_credential_name("X-Api-Key")
    assert is_credential_name("x-tokengate-session")
    assert not is_credential_name("content-type")
    assert not is_credential_name("keep-alive")


async def test_recording_truncated_tail_keeps_flows(recorder, recordings):
    await recorder.response(model_flow())
    await recorder.response(model_flow())
    path = recordings / "s1.flows"
    path.write_bytes(path.read_bytes()[:-10])

    recording = read_recording(path)

    assert len(recording.flows) == 1
    assert recording.incomplete_tail


async def test_recorder_repairs_truncated_tail(vault, recordings):
    first = Recorder(lambda: vault)
    with taddons.context(first) as tctx:
        tctx.configure(first, tokengate_recordings=str(recordings))
        await first.response(model_flow())
        await first.response(model_flow())
    path = recordings / "s1.flows"
    path.write_bytes(path.read_bytes()[:-10])

    restarted = Recorder(lambda: vault)
    with taddons.context(restarted) as tctx:
        tctx.configure(restarted, tokengate_recordings=str(recordings))
        await restarted.response(model_flow())

    recording = read_recording(path)
    assert len(recording.flows) == 2
    assert not recording.incomplete_tail


async def test_recording_opens_in_mitmdump(recorder, recordings):
    await recorder.response(model_flow())
    await recorder.response(model_flow())

    result = subprocess.run(
        [str(MITMDUMP), "-n", "-r", str(recordings / "s1.flows"), "--flow-detail", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("POST http://127.0.0.1:8000/v1/chat/completions") == 2


async def test_recorder_failure_anthropic_error_format(recordings):
    addon = Recorder(lambda: None)
    with taddons.context(addon) as tctx:
        tctx.configure(addon, tokengate_recordings=str(recordings))
        flow = model_flow()
        flow.metadata["tokengate"]["shape"] = "ANTHROPIC_MESSAGES"

        await addon.response(flow)

    document = json.loads(flow.response.content)
    assert flow.response.status_code == 503
    assert document["type"] == "error"
    assert document["error"]["type"] == "api_error"


def test_appender_concurrent_threads(tmp_path):
    path = tmp_path / "s1.flows"
    appender = FlowFileAppender()
    flows = [recorded_copy(model_flow()) for _ in range(80)]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda flow: appender.append(path, flow), flows))

    recording = read_recording(path)
    assert sorted(flow.id for flow in recording.flows) == sorted(f.id for f in flows)
    assert not recording.incomplete_tail


def test_appenders_share_file(tmp_path):
    path = tmp_path / "s1.flows"
    first = FlowFileAppender()
    second = FlowFileAppender()

    for appender in (first, second, first, second):
        appender.append(path, recorded_copy(model_flow()))

    recording = read_recording(path)
    assert len(recording.flows) == 4
    assert not recording.incomplete_tail
