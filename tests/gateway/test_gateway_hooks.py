"""The Gateway addon's hooks, called directly on test flows."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import brotli
import pytest
from mitmproxy import http
from mitmproxy.exceptions import OptionsError
from mitmproxy.addons import proxyserver
from mitmproxy.test import taddons, tflow, tutils

from addons.gateway import METADATA_KEY, Gateway
from addons.recording import Recorder
from addons.stream_guard import GuardedStream
from addons.shapes import ApiShape

from .conftest import UPSTREAM_KEY

EMAIL = "alice.novak@example.test"


def chat_flow(content: bytes | None, host: str = "127.0.0.1", port: int = 8000, **headers: str) -> http.HTTPFlow:
    request = tutils.treq(
        host=host,
        port=port,
        method=b"POST",
        path=b"/v1/chat/completions",
        headers=http.Headers(
            content_type="application/json", authorization="Bearer sk-client", **headers
        ),
        content=b"",
    )
    request.data.content = content
    if content is not None:
        request.headers["content-length"] = str(len(content))
    return tflow.tflow(req=request)


def chat_body(text: str) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()


async def send(gateway: Gateway, flow: http.HTTPFlow) -> None:
    gateway.requestheaders(flow)
    await gateway.request(flow)


def error_of(flow: http.HTTPFlow) -> dict:
    assert flow.response is not None
    return json.loads(flow.response.content)["error"]


def test_other_host_rejected_403(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(chat_body("hi"), host="example.test", port=80)
    asyncio.run(send(gateway, flow))
    assert flow.response.status_code == 403
    assert "example.test:80" in error_of(flow)["message"]
    assert "tokengate_model_hosts" in error_of(flow)["message"]


def test_other_host_not_recorded(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(chat_body("hi"), host="example.test", port=80)
    asyncio.run(send(gateway, flow))
    assert METADATA_KEY not in flow.metadata
    assert "authorization" not in flow.request.headers


def test_request_tokenized_and_credential_replaced(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(chat_body(f"mail {EMAIL}"))
    asyncio.run(send(gateway, flow))
    assert flow.response is None
    assert EMAIL not in flow.request.get_text()
    assert flow.request.headers["content-length"] == str(len(flow.request.raw_content))
    assert flow.request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert flow.request.headers["accept-encoding"] == "identity"


def test_metadata_contract(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(chat_body(f"mail {EMAIL}"))
    asyncio.run(send(gateway, flow))
    metadata = flow.metadata[METADATA_KEY]
    assert metadata["shape"] == "OPENAI_CHAT"
    assert metadata["counts"] == {"EMAIL_ADDRESS": 1}
    assert metadata["decisions"] == ["tokenized"]
    assert metadata["recorded_request"] == flow.request.raw_content
    assert metadata["recorded_response"] is None
    assert metadata["principal"].startswith("key-")
    assert metadata["session"].startswith("s-")


def test_unbuffered_body_rejected_413(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(None)
    asyncio.run(send(gateway, flow))
    assert flow.response.status_code == 413
    assert error_of(flow)["code"] == "body_not_buffered"
    assert flow.metadata[METADATA_KEY]["decisions"] == ["rejected:body_not_buffered"]


def test_declared_length_over_limit_rejected_in_headers(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(b"")
    flow.request.headers["content-length"] = str(70 * 1024 * 1024)
    gateway.requestheaders(flow)
    assert flow.response.status_code == 413
    assert "tokengate_max_body" in error_of(flow)["message"]


def test_chunked_body_over_limit_rejected(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(chat_body("x" * 70_000))
    del flow.request.headers["content-length"]
    asyncio.run(send(gateway, flow))
    assert flow.response.status_code == 413


def test_unknown_encoding_rejected_415(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(chat_body("x"), content_encoding="compress")
    asyncio.run(send(gateway, flow))
    assert flow.response.status_code == 415


def test_unparseable_body_rejected_400_without_echo(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(f"{{not json {EMAIL}".encode())
    asyncio.run(send(gateway, flow))
    assert flow.response.status_code == 400
    assert EMAIL not in flow.response.get_text()


class FailingPipeline:
    def process_request(self, shape, body, namespace):
        raise RuntimeError(f"broken near {EMAIL}")


class SlowPipeline:
    def process_request(self, shape, body, namespace):
        time.sleep(1.0)
        raise AssertionError("the gateway should have given up")


def test_detection_failure_rejected_503(gateway_context) -> None:
    gateway, _ = gateway_context
    gateway.engine.pipeline = FailingPipeline()
    flow = chat_flow(chat_body(f"mail {EMAIL}"))
    asyncio.run(send(gateway, flow))
    assert flow.response.status_code == 503
    assert error_of(flow)["code"] == "detection_failed"
    assert EMAIL not in flow.response.get_text()
    assert EMAIL in flow.request.get_text()  # untouched, and never forwarded


def test_detection_timeout_rejected_504(gateway_context) -> None:
    gateway, tctx = gateway_context
    tctx.configure(gateway, tokengate_timeout="0.1")
    gateway.engine.pipeline = SlowPipeline()
    flow = chat_flow(chat_body("hello"))
    asyncio.run(send(gateway, flow))
    assert flow.response.status_code == 504
    assert error_of(flow)["code"] == "detection_timeout"


def test_fail_open_forwards_and_records_nothing(gateway_context) -> None:
    gateway, tctx = gateway_context
    tctx.configure(gateway, tokengate_fail_mode="open")
    gateway.engine.pipeline = FailingPipeline()
    flow = chat_flow(chat_body(f"mail {EMAIL}"))
    asyncio.run(send(gateway, flow))
    metadata = flow.metadata[METADATA_KEY]
    assert flow.response is None
    assert metadata["decisions"] == ["fail_open:detection_failed"]
    assert metadata["recorded_request"] == b""


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"m","messages":[{"role":"user","content":"mail '
        + EMAIL.encode()
        + b'","content":"hi"}]}',
        b'{"model":"m","messages":[{"role":"user","content":"\\ud800 mail '
        + EMAIL.encode()
        + b'"}]}',
    ],
    ids=["repeated_key", "lone_surrogate"],
)
def test_crafted_body_rejected_400_even_fail_open(gateway_context, body: bytes) -> None:
    gateway, tctx = gateway_context
    tctx.configure(gateway, tokengate_fail_mode="open")
    flow = chat_flow(body)
    asyncio.run(send(gateway, flow))
    assert flow.response.status_code == 400
    assert error_of(flow)["code"] == "invalid_body"
    assert EMAIL not in flow.response.get_text()


def test_websocket_upgrade_rejected(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(b"", upgrade="websocket", connection="upgrade")
    gateway.requestheaders(flow)
    assert flow.response.status_code == 403


def test_response_restored_for_client(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(chat_body(f"mail {EMAIL}"))
    asyncio.run(send(gateway, flow))
    sent = json.loads(flow.request.content)["messages"][0]["content"]
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": sent}}]}
    flow.response = tutils.tresp(
        content=json.dumps(answer).encode(),
        headers=http.Headers(content_type="application/json"),
    )
    gateway.responseheaders(flow)
    asyncio.run(gateway.response(flow))
    restored = json.loads(flow.response.content)["choices"][0]["message"]["content"]
    assert restored == f"mail {EMAIL}"
    assert "authorization" not in flow.request.headers
    metadata = flow.metadata[METADATA_KEY]
    assert EMAIL.encode() not in metadata["recorded_response"]
    assert "restored:1" in metadata["decisions"]


def test_response_timeout_says_answer_withheld(gateway_context) -> None:
    gateway, tctx = gateway_context
    flow = chat_flow(chat_body(f"mail {EMAIL}"))
    asyncio.run(send(gateway, flow))
    tctx.configure(gateway, tokengate_timeout="0.1")

    def slow_response(*args, **kwargs):
        time.sleep(1.0)
        raise AssertionError("the gateway should have given up")

    gateway.engine.pipeline.process_response = slow_response
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}]}
    flow.response = tutils.tresp(
        content=json.dumps(answer).encode(),
        headers=http.Headers(content_type="application/json"),
    )
    gateway.responseheaders(flow)
    asyncio.run(gateway.response(flow))
    assert flow.response.status_code == 504
    message = error_of(flow)["message"]
    assert "checking the response" in message
    assert "the model's answer was withheld" in message


def test_sse_response_streamed_through_rewriter(gateway_context) -> None:
    gateway, _ = gateway_context
    flow = chat_flow(chat_body(f"mail {EMAIL}"))
    asyncio.run(send(gateway, flow))
    token = json.loads(flow.request.content)["messages"][0]["content"].split()[-1]
    flow.response = tutils.tresp(
        content=b"",
        headers=http.Headers(content_type="text/event-stream", content_length="999"),
    )
    gateway.responseheaders(flow)
    stream = flow.response.stream
    assert callable(stream)
    assert "content-length" not in flow.response.headers

    def event(text: str) -> bytes:
        chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    first = stream(event("to " + token[:4]))
    assert first != b""
    second = stream(event(token[4:] + " ok"))
    tail = stream(b"data: [DONE]\n\n")
    end = stream(b"")
    output = b"".join(
        part if isinstance(part, bytes) else b"".join(part) for part in (first, second, tail, end)
    )
    assert EMAIL.encode() in output
    assert output.endswith(b"data: [DONE]\n\n")


def test_partial_event_held_back_as_empty_list() -> None:
    class Holding:
        recorded = bytearray()

        def feed(self, chunk: bytes) -> bytes:
            return b""

        def finish(self) -> bytes:
            return b"rest"

    stream = GuardedStream(Holding(), ApiShape.OPENAI_CHAT, "text/event-stream", "f1")
    assert stream(b"data: {") == []
    assert stream(b"") == b"rest"


def test_rewriter_exception_ends_stream_with_error_event() -> None:
    class Broken:
        recorded = bytearray()

        def feed(self, chunk: bytes) -> bytes:
            raise ValueError(f"cannot parse {EMAIL}")

        def finish(self) -> bytes:
            return b""

    stream = GuardedStream(Broken(), ApiShape.OPENAI_CHAT, "text/event-stream", "f1")
    event = stream(b"data: x\n\n")
    assert event.startswith(b"event: error\ndata: ")
    assert EMAIL.encode() not in event
    assert stream(b"data: y\n\n") == []
    assert stream(b"") == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("stream_large_bodies", "1m"), ("proxy_debug", True)],
)
def test_conflicting_option_rejected(gateway_context, option: str, value: object) -> None:
    gateway, tctx = gateway_context
    with pytest.raises(OptionsError, match=option):
        tctx.configure(gateway, **{option: value})


def test_connection_strategy_set_lazy(gateway_context) -> None:
    _, tctx = gateway_context
    assert tctx.options.connection_strategy == "lazy"


def test_unconfigured_gateway_rejects_503() -> None:
    gateway = Gateway()
    with taddons.context(gateway):
        flow = chat_flow(chat_body("hi"))
        gateway.requestheaders(flow)
    assert flow.response.status_code == 503


def sse_event(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def tokenized_flow(gateway: Gateway) -> tuple[http.HTTPFlow, str]:
    flow = chat_flow(chat_body(f"mail {EMAIL}"))
    asyncio.run(send(gateway, flow))
    token = json.loads(flow.request.content)["messages"][0]["content"].split()[-1]
    return flow, token


def test_gzip_sse_decoded_while_streaming(gateway_context) -> None:
    gateway, _ = gateway_context
    flow, token = tokenized_flow(gateway)
    flow.response = tutils.tresp(
        content=b"",
        headers=http.Headers(content_type="text/event-stream", content_encoding="gzip"),
    )
    gateway.responseheaders(flow)
    compressed = gzip.compress(sse_event(f"to {token}") + b"data: [DONE]\n\n")
    output = b""
    for chunk in (compressed, b""):
        result = flow.response.stream(chunk)
        if isinstance(result, bytes):
            output += result
    assert "content-encoding" not in flow.response.headers
    assert EMAIL.encode() in output


def test_brotli_sse_rewritten_after_buffering(gateway_context) -> None:
    gateway, _ = gateway_context
    flow, token = tokenized_flow(gateway)
    body = sse_event(f"to {token}") + b"data: [DONE]\n\n"
    flow.response = tutils.tresp(
        content=brotli.compress(body),
        headers=http.Headers(content_type="text/event-stream", content_encoding="br"),
    )
    gateway.responseheaders(flow)
    assert flow.response.stream is False
    asyncio.run(gateway.response(flow))
    assert "content-encoding" not in flow.response.headers
    assert EMAIL.encode() in flow.response.content
    assert EMAIL.encode() not in flow.metadata[METADATA_KEY]["recorded_response"]


def test_config_file_sets_recorder_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TOKENGATE_HOME", str(tmp_path))
    recordings = tmp_path / "from-config"
    config = tmp_path / "tokengate.yaml"
    config.write_text(f"upstream: http://127.0.0.1:8000\nrecordings: {recordings}\n")
    gateway = Gateway()
    recorder = Recorder(vault=lambda: gateway.vault)
    # Registered before the gateway, so adding its option does not configure the
    # gateway before tokengate_config is set.
    with taddons.context(proxyserver.Proxyserver(), recorder, gateway) as tctx:
        tctx.configure(gateway, tokengate_config=str(config))
        assert tctx.options.tokengate_recordings == str(recordings)
        assert recorder.directory == recordings
    gateway.done()
