"""Measure the latency tokengate adds, beside a plain mitmdump in the same run.

Starts the fake model server (tests/e2e/fake_model_server.py), a plain mitmdump with no
addon, and mitmdump with the tokengate addon, all on 127.0.0.1. Then sends the same
requests through each with httpx and prints median times:

- a non-streamed chat request with a 1 KB user message containing a name, an email
  address and a phone number, new text each time (the per-message cache misses), and
  the same message repeated (the cache hits);
- a streamed chat request, timed until the first content event arrives.

Usage: .venv/bin/python scripts/bench_gateway.py [--requests N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MITMDUMP = ROOT / ".venv" / "bin" / "mitmdump"
FAKE_SERVER = ROOT / "tests" / "e2e" / "fake_model_server.py"
LISTENING = re.compile(r"listening at [^\s]*:(\d+)")
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@contextmanager
def process(command: list[str], log_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    with log_path.open("wb") as log:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def wait_for_log_port(log_path: Path, ready_text: str) -> int:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = LISTENING.search(text)
        if match and ready_text in text:
            return int(match.group(1))
        time.sleep(0.1)
    raise RuntimeError(f"mitmdump did not start; see {log_path}")


def message(number: int) -> str:
    """About 1 KB of user text with three sensitive values; `number` makes it unique."""
    text = (
        f"Ticket {number}: customer Dana Reyes (dana.reyes{number}@example.test, "
        f"+1 202 555 01{number % 100:02d}) reports that the invoice export fails. "
    )
    filler = "The export worked last week and the report layout has not changed. "
    while len(text) < 1000:
        text += filler
    return text[:1000]


def chat_body(text: str, stream: bool = False) -> dict:
    return {
        "model": "fake-model",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


def time_request(client: httpx.Client, url: str, body: dict) -> float:
    started = time.perf_counter()
    response = client.post(url, json=body)
    response.raise_for_status()
    return time.perf_counter() - started


def time_first_event(client: httpx.Client, url: str, body: dict) -> float:
    started = time.perf_counter()
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        elapsed = None
        for line in response.iter_lines():
            if elapsed is None and _is_content_event(line):
                elapsed = time.perf_counter() - started
    if elapsed is None:
        raise RuntimeError("the stream ended without a content event")
    return elapsed


def _is_content_event(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(
    label: str, runs: int, proxy: str | None, sample: Callable[[httpx.Client, int], float]
) -> float:
    with httpx.Client(proxy=proxy, trust_env=False, timeout=60) as client:
        for number in range(3):
            sample(client, 10_000 + number)  # warm-up: connections, spaCy's first call
        samples = [sample(client, number) for number in range(runs)]
    value = median_ms(samples)
    print(f"  {label:<12} median {value:7.1f} ms  (n={runs})")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per case")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tokengate-bench-"))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["TOKENGATE_HOME"] = str(workdir / "home")
    server_port = free_port()
    upstream = f"http://127.0.0.1:{server_port}"
    chat_url = f"{upstream}/v1/chat/completions"
    common = ["--listen-host", "127.0.0.1", "--listen-port", "0", "--set", f"confdir={workdir / 'conf'}"]

    with (
        process([sys.executable, str(FAKE_SERVER), "--port", str(server_port)], workdir / "server.log", env),
        process([str(MITMDUMP), *common, "--set", "flow_detail=0"], workdir / "plain.log", env),
        process(
            [str(MITMDUMP), "-s", str(ROOT / "addons" / "tokengate.py"), *common,
             "--set", "flow_detail=0", "--set", f"tokengate_upstream={upstream}"],
            workdir / "tokengate.log",
            env,
        ),
    ):
        wait_for_port(server_port)
        plain = f"http://127.0.0.1:{wait_for_log_port(workdir / 'plain.log', 'listening')}"
        # The detection workers load spaCy after start-up, which would slow the
        # first measured requests down.
        gateway_log = workdir / "tokengate.log"
        gateway = f"http://127.0.0.1:{wait_for_log_port(gateway_log, 'worker processes ready')}"
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
        print(f"requests per case: {args.requests}; logs in {workdir}")

        routes = {"direct": None, "mitmdump": plain, "tokengate": gateway}
        results: dict[str, dict[str, float]] = {}
        cases: dict[str, Callable[[httpx.Client, int], float]] = {
            "chat, new 1 KB message": lambda c, n: time_request(c, chat_url, chat_body(message(n))),
            "chat, repeated 1 KB message": lambda c, n: time_request(c, chat_url, chat_body(message(1))),
            "stream, first content event": lambda c, n: time_first_event(
                c, chat_url, chat_body(message(20_000 + n), stream=True)
            ),
        }
        for case, sample in cases.items():
            print(case)
            results[case] = {
                route: measure(route, args.requests, proxy, sample) for route, proxy in routes.items()
            }
        print("added by tokengate over plain mitmdump (difference of medians):")
        for case, values in results.items():
            print(f"  {case:<30} {values['tokengate'] - values['mitmdump']:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
