"""A small local model server for tests and benchmarks.

It speaks enough of three APIs to drive the gateway: OpenAI-compatible
`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and `/v1/models`,
Ollama `/api/chat` (NDJSON stream by default) and Anthropic `/v1/messages`. It records
every request it receives and every event it sends, with timestamps from
`time.monotonic()`.

The reply is chosen per request by headers:
    x-fake-reply: echo (default) | leak | fixed
        echo returns the last user message; leak returns FAKE_CUSTOMER_RECORD, a value
        the client never sent; fixed returns x-fake-text.
    x-fake-deltas: a JSON list of strings, streamed as one delta each. They replace
        the reply text, and the non-streamed reply is their concatenation.
    x-fake-kind: text (default) | tool; tool streams the deltas as tool-call
        arguments of tool call 0.
    x-fake-delay-ms: pause before each streamed event (default 0).
    x-fake-chunk-bytes: write each event in pieces of this many bytes (default: whole).
    x-fake-status: answer with this HTTP status and an OpenAI-style error body.
A prompt that starts with "LEAK" selects the leak reply too, for clients that cannot
set headers.

Run it alone with `python tests/e2e/fake_model_server.py --port 8000`.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FAKE_CUSTOMER_RECORD = (
    "Customer Mara Lindqvist, mara.lindqvist@example.test, card 4111 1111 1111 1111"
)
MODEL = "fake-model"


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class SentEvent:
    request_index: int
    data: bytes
    at: float


@dataclass
class ServerLog:
    """Requests received and events sent, shared by all handler threads."""

    requests: list[ReceivedRequest] = field(default_factory=list)
    events: list[SentEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_request(self, request: ReceivedRequest) -> int:
        with self.lock:
            self.requests.append(request)
            return len(self.requests) - 1

    def add_event(self, index: int, data: bytes) -> None:
        with self.lock:
            self.events.append(SentEvent(index, data, time.monotonic()))

    def events_of(self, index: int) -> list[SentEvent]:
        with self.lock:
            return [event for event in self.events if event.request_index == index]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.events.clear()


@dataclass
class ReplyPlan:
    deltas: list[str]
    kind: str
    delay: float
    chunk_bytes: int | None

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def last_user_text(document: dict[str, Any]) -> str:
    if "messages" in document:
        for message in reversed(document["messages"]):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""
    prompt = document.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict)
        )
    return ""


def plan_reply(headers: Any, document: dict[str, Any]) -> ReplyPlan:
    prompt = last_user_text(document)
    mode = headers.get("x-fake-reply", "echo")
    if mode == "leak" or prompt.startswith("LEAK"):
        text = FAKE_CUSTOMER_RECORD
    elif mode == "fixed":
        text = headers.get("x-fake-text", "")
    else:
        text = prompt
    deltas = [text[i : i + 8] for i in range(0, len(text), 8)] or [""]
    if "x-fake-deltas" in headers:
        deltas = json.loads(headers["x-fake-deltas"])
    chunk_bytes = headers.get("x-fake-chunk-bytes")
    return ReplyPlan(
        deltas=deltas,
        kind=headers.get("x-fake-kind", "text"),
        delay=int(headers.get("x-fake-delay-ms", "0")) / 1000,
        chunk_bytes=int(chunk_bytes) if chunk_bytes else None,
    )


class FakeModelHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FakeModelServer"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._record(b"")
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        index = self._record(body)
        if "x-fake-status" in self.headers:
            status = int(self.headers["x-fake-status"])
            self._send_json(status, {"error": {"message": "fake failure", "type": "server_error"}})
            return
        try:
            document = json.loads(body) if body else {}
        except ValueError:
            self._send_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        plan = plan_reply(self.headers, document)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/api/chat"):
            self._ollama_chat(index, document, plan)
        elif path.endswith("/v1/messages"):
            self._anthropic_messages(index, document, plan)
        elif path.endswith("/chat/completions"):
            self._openai_chat(index, document, plan)
        elif path.endswith("/completions"):
            self._openai_completions(index, document, plan)
        elif path.endswith("/embeddings"):
            self._send_json(200, {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}], "model": MODEL})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})

    # Recording and sending

    def _record(self, body: bytes) -> int:
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = ReceivedRequest(self.command, self.path, headers, body, time.monotonic())
        return self.server.log.add_request(request)

    def _send_json(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        self.wfile.flush()

    def _send_event(self, index: int, data: bytes, plan: ReplyPlan) -> None:
        if plan.delay:
            time.sleep(plan.delay)
        size = plan.chunk_bytes or len(data)
        for start in range(0, len(data), size):
            piece = data[start : start + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            if plan.chunk_bytes:
                time.sleep(0.002)
        self.server.log.add_event(index, data)

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # OpenAI-compatible

    def _openai_chat(self, index: int, document: dict[str, Any], plan: ReplyPlan) -> None:
        created = int(time.time())
        if not document.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": plan.text}
            finish = "stop"
            if plan.kind == "tool":
                message = {"role": "assistant", "content": None, "tool_calls": [_tool_call(plan.text)]}
                finish = "tool_calls"
            self._send_json(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": created,
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })
            return

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            document = {
                "id": "chatcmpl-fake", "object": "chat.completion.chunk",
                "created": created, "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(document).encode() + b"\n\n"

        self._start_stream("text/event-stream")
        self._send_event(index, chunk({"role": "assistant", "content": ""}), plan)
        for number, delta in enumerate(plan.deltas):
            if plan.kind == "tool":
                call: dict[str, Any] = {"index": 0, "function": {"arguments": delta}}
                if number == 0:
                    call.update(id="call_fake", type="function")
                    call["function"]["name"] = "send_email"
                self._send_event(index, chunk({"tool_calls": [call]}), plan)
            else:
                self._send_event(index, chunk({"content": delta}), plan)
        finish = "tool_calls" if plan.kind == "tool" else "stop"
        self._send_event(index, chunk({}, finish), plan)
        self._send_event(index, b"data: [DONE]\n\n", plan)
        self._end_stream()

    def _openai_completions(self, index: int, document: dict[str, Any], plan: ReplyPlan) -> None:
        self._send_json(200, {
            "id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
            "model": MODEL,
            "choices": [{"index": 0, "text": plan.text, "finish_reason": "stop"}],
        })

    # Ollama

    def _ollama_chat(self, index: int, document: dict[str, Any], plan: ReplyPlan) -> None:
        def line(content: str, done: bool) -> bytes:
            document: dict[str, Any] = {
                "model": MODEL, "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": content}, "done": done,
            }
            if done:
                document["done_reason"] = "stop"
            return json.dumps(document).encode() + b"\n"

        if document.get("stream") is False:
            self._send_json(200, json.loads(line(plan.text, True)))
            return
        self._start_stream("application/x-ndjson")
        for delta in plan.deltas:
            self._send_event(index, line(delta, False), plan)
        self._send_event(index, line("", True), plan)
        self._end_stream()

    # Anthropic

    def _anthropic_messages(self, index: int, document: dict[str, Any], plan: ReplyPlan) -> None:
        if not document.get("stream"):
            self._send_json(200, {
                "id": "msg_fake", "type": "message", "role": "assistant", "model": MODEL,
                "content": [{"type": "text", "text": plan.text}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            })
            return

        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        self._start_stream("text/event-stream")
        self._send_event(index, event("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": MODEL,
            "content": [], "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0},
        }}), plan)
        self._send_event(index, event("content_block_start", {
            "type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""},
        }), plan)
        for delta in plan.deltas:
            self._send_event(index, event("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": delta},
            }), plan)
        self._send_event(index, event("content_block_stop", {"type": "content_block_stop", "index": 0}), plan)
        self._send_event(index, event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 1},
        }), plan)
        self._send_event(index, event("message_stop", {"type": "message_stop"}), plan)
        self._end_stream()


def _tool_call(arguments: str) -> dict[str, Any]:
    return {
        "id": "call_fake", "type": "function",
        "function": {"name": "send_email", "arguments": arguments},
    }


class FakeModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], log: ServerLog) -> None:
        super().__init__(address, FakeModelHandler)
        self.log = log

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> "FakeModelServer":
        thread = threading.Thread(target=self.serve_forever, name="fake-model", daemon=True)
        thread.start()
        return self


def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    log: ServerLog | None = None,
    tls: tuple[Path, Path] | None = None,
) -> FakeModelServer:
    """Start a server thread; `tls` is (certificate, private key) for an HTTPS listener."""
    server = FakeModelServer((host, port), log or ServerLog())
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server.start()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    args = parser.parse_args()
    server = FakeModelServer((args.host, args.port), ServerLog())
    print(f"fake model server listening on http://{args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
