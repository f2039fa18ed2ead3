"""A gateway killed while recording loses at most the flow being written."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from addons.recording import FlowFileAppender
from addons.recording import recorded_copy
from addons.replay import read_recording

from tests.recording.conftest import model_flow

# Each flow carries a 2 MB body, so that a kill often lands inside a write.
WRITER = textwrap.dedent(
    """
    import sys
    from addons.recording import FlowFileAppender, recorded_copy
    from tests.recording.conftest import model_flow

    path = __import__("pathlib").Path(sys.argv[1])
    appender = FlowFileAppender()
    body = b"[PERSON_13] " * 180_000
    while True:
        flow = model_flow(recorded_request=body, recorded_response=body)
        appender.append(path, recorded_copy(flow))
    """
)
MIN_FLOWS_BEFORE_KILL = 5


def wait_for_flows(path: Path, count: int, process: subprocess.Popen) -> None:
    """Poll the file until it contains `count` complete flows or the writer exits."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        if path.exists() and len(read_recording(path).flows) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"writer did not write {count} flows within 120 s")


def test_killed_writer_keeps_complete_flows(tmp_path):
    path = tmp_path / "s1.flows"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=Path(__file__).parents[2],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_flows(path, MIN_FLOWS_BEFORE_KILL, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    killed = read_recording(path)
    assert process.returncode == -signal.SIGKILL
    assert len(killed.flows) >= MIN_FLOWS_BEFORE_KILL
    assert all(flow.request.content.startswith(b"[PERSON_13]") for flow in killed.flows)

    FlowFileAppender().append(path, recorded_copy(model_flow()))
    resumed = read_recording(path)
    assert len(resumed.flows) == len(killed.flows) + 1
    assert not resumed.incomplete_tail
