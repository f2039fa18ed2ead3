"""The gateway in regular proxy mode: openai client, httpx and curl over plain HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import httpx
import openai
import pytest
from mitmproxy.io import FlowReader

from .fake_model_server import FAKE_CUSTOMER_RECORD, FakeModelServer, ServerLog
from .harness import UPSTREAM_KEY, Gateway

CLIENT_KEY = "sk-test-FAKE000"
ALICE = "Alice Novak"
ALICE_EMAIL = "alice.novak@example.test"
TOKEN = re.compile(r"\[[A-Z_]+_\d+\]")


@pytest.fixture
def client(
    gateway: Gateway, model_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> openai.OpenAI:
    """The openai client, which sends through the gateway because HTTP_PROXY is set."""
    monkeypatch.setenv("HTTP_PROXY", gateway.proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{model_server.port}/v1",
        api_key=CLIENT_KEY,
        max_retries=0,
    )


@pytest.fixture
def proxied(gateway: Gateway) -> httpx.Client:
    with httpx.Client(proxy=gateway.proxy_url, trust_env=False, timeout=30) as client:
        yield client


def person_token(server_log: ServerLog, client: openai.OpenAI) -> str:
    """The token of ALICE in the client's namespace, as the model receives it."""
    client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": f"I am {ALICE}"}]
    )
    (token,) = TOKEN.findall(server_log.requests[-1].body.decode())
    return token


def test_chat_upstream_receives_tokens(client: openai.OpenAI, server_log: ServerLog) -> None:
    prompt = f"My name is {ALICE} and my email is {ALICE_EMAIL}."
    client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": prompt}]
    )
    upstream_body = server_log.requests[-1].body.decode()
    assert ALICE not in upstream_body
    assert ALICE_EMAIL not in upstream_body
    assert "[PERSON_" in upstream_body
    assert "[EMAIL_ADDRESS_" in upstream_body


def test_chat_client_gets_own_values_back(client: openai.OpenAI) -> None:
    prompt = f"My name is {ALICE} and my email is {ALICE_EMAIL}."
    completion = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": prompt}]
    )
    assert completion.choices[0].message.content == prompt


def test_chat_upstream_credential_replaces_client_key(
    client: openai.OpenAI, server_log: ServerLog
) -> None:
    client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-api-key": "FAKE111", "cookie": "session=FAKE222"},
    )
    headers = server_log.requests[-1].headers
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "x-api-key" not in headers
    assert "cookie" not in headers
    assert CLIENT_KEY not in json.dumps(headers)


def test_model_produced_record_stays_tokenized(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "who is our best customer?"}],
        extra_headers={"x-fake-reply": "leak"},
    )
    answer = completion.choices[0].message.content
    assert "mara.lindqvist@example.test" not in answer
    assert "4111 1111 1111 1111" not in answer
    assert "Mara Lindqvist" not in answer
    assert "[EMAIL_ADDRESS_" in answer


def test_streamed_leak_stays_tokenized(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "who is our best customer?"}],
        extra_headers={"x-fake-reply": "leak", "x-fake-chunk-bytes": "7"},
        stream=True,
    )
    answer = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "mara.lindqvist@example.test" not in answer
    assert "4111 1111 1111 1111" not in answer
    assert "[EMAIL_ADDRESS_" in answer
    assert FAKE_CUSTOMER_RECORD not in answer


def test_stream_first_event_before_upstream_ends(
    client: openai.OpenAI, server_log: ServerLog
) -> None:
    deltas = ["one ", "two ", "three ", "four ", "five"]
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "count"}],
        extra_headers={"x-fake-deltas": json.dumps(deltas), "x-fake-delay-ms": "300"},
        stream=True,
    )
    sent_before_first_content = None
    received = []
    for chunk in stream:
        content = chunk.choices[0].delta.content if chunk.choices else None
        if content and sent_before_first_content is None:
            index = len(server_log.requests) - 1
            sent_before_first_content = len(server_log.events_of(index))
        if content:
            received.append(content)
    total_sent = len(server_log.events_of(len(server_log.requests) - 1))
    assert "".join(received) == "".join(deltas)
    assert total_sent == 8
    assert sent_before_first_content is not None
    assert sent_before_first_content < total_sent


def test_split_token_in_stream_is_restored(
    client: openai.OpenAI, server_log: ServerLog
) -> None:
    token = person_token(server_log, client)
    deltas = ["Hi " + token[:5], token[5:] + ", done"]
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": f"I am {ALICE}"}],
        extra_headers={"x-fake-deltas": json.dumps(deltas)},
        stream=True,
    )
    answer = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert answer == f"Hi {ALICE}, done"


def test_tool_call_arguments_tokenized_upstream(
    client: openai.OpenAI, server_log: ServerLog
) -> None:
    client.chat.completions.create(
        model="fake-model",
        messages=[
            {"role": "user", "content": "mail her"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "send_email",
                            "arguments": json.dumps({"to": "alice@example.test"}),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
        ],
    )
    upstream = server_log.requests[-1].json()
    arguments = upstream["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert "alice@example.test" not in arguments
    assert json.loads(arguments)["to"].startswith("[EMAIL_ADDRESS_")


def test_streamed_tool_call_arguments_restored(
    client: openai.OpenAI, server_log: ServerLog
) -> None:
    client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "to alice@example.test"}]
    )
    (token,) = TOKEN.findall(server_log.requests[-1].body.decode())
    arguments = json.dumps({"to": token})
    deltas = [arguments[:9], arguments[9:14], arguments[14:]]
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "to alice@example.test"}],
        extra_headers={"x-fake-deltas": json.dumps(deltas), "x-fake-kind": "tool"},
        stream=True,
    )
    pieces = []
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            pieces.append(call.function.arguments or "")
    assert json.loads("".join(pieces)) == {"to": "alice@example.test"}


def test_ollama_ndjson_stays_stream_and_restores(
    proxied: httpx.Client, model_server: FakeModelServer, server_log: ServerLog
) -> None:
    url = f"http://127.0.0.1:{model_server.port}/api/chat"
    prompt = f"I am {ALICE}"
    body = {"model": "fake-model", "messages": [{"role": "user", "content": prompt}]}
    lines = []
    sent_before_first_line = None
    headers = {"x-fake-delay-ms": "300"}
    with proxied.stream("POST", url, json=body, headers=headers) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        for line in response.iter_lines():
            if sent_before_first_line is None:
                sent_before_first_line = len(server_log.events_of(len(server_log.requests) - 1))
            if line:
                lines.append(json.loads(line))
    total_sent = len(server_log.events_of(len(server_log.requests) - 1))
    assert ALICE not in server_log.requests[-1].body.decode()
    assert "".join(line["message"]["content"] for line in lines) == prompt
    assert lines[-1]["done"] is True
    assert sent_before_first_line is not None
    assert sent_before_first_line < total_sent


def test_anthropic_sse_stream_restores(
    proxied: httpx.Client, model_server: FakeModelServer, server_log: ServerLog
) -> None:
    url = f"http://127.0.0.1:{model_server.port}/v1/messages"
    prompt = f"I am {ALICE}, mail {ALICE_EMAIL}"
    body = {
        "model": "fake-model",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": prompt}],
    }
    text = []
    with proxied.stream("POST", url, json=body, headers={"x-api-key": "FAKE111"}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "content_block_delta":
                    text.append(event["delta"]["text"])
    upstream = server_log.requests[-1]
    assert upstream.headers["x-api-key"] == UPSTREAM_KEY
    assert ALICE_EMAIL not in upstream.body.decode()
    assert "".join(text) == prompt


def test_other_host_rejected_with_403(proxied: httpx.Client) -> None:
    response = proxied.post("http://example.test/v1/chat/completions", json={})
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "example.test:80" in message
    assert "tokengate_model_hosts" in message


def test_other_port_rejected_with_403(proxied: httpx.Client, model_server: FakeModelServer) -> None:
    response = proxied.get(f"http://127.0.0.1:{model_server.port + 1}/v1/models")
    assert response.status_code == 403


def test_https_connect_to_other_host_rejected(gateway: Gateway) -> None:
    with httpx.Client(proxy=gateway.proxy_url, trust_env=False, verify=False) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            client.get("https://example.test/")


def test_websocket_upgrade_rejected(proxied: httpx.Client, model_server: FakeModelServer) -> None:
    response = proxied.get(
        f"http://127.0.0.1:{model_server.port}/v1/realtime",
        headers={
            "connection": "upgrade",
            "upgrade": "websocket",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13",
        },
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "upgrade_not_supported"


def test_curl_chat_through_proxy(
    gateway: Gateway, model_server: FakeModelServer, server_log: ServerLog
) -> None:
    prompt = f"Call {ALICE} at {ALICE_EMAIL}"
    body = json.dumps({"model": "fake-model", "messages": [{"role": "user", "content": prompt}]})
    result = subprocess.run(
        [
            "curl", "-sS", "--noproxy", "", "-x", gateway.proxy_url,
            "-H", "content-type: application/json",
            "-H", f"authorization: Bearer {CLIENT_KEY}",
            "-d", body,
            f"http://127.0.0.1:{model_server.port}/v1/chat/completions",
        ],
        capture_output=True, check=True, timeout=30,
    )
    answer = json.loads(result.stdout)
    assert ALICE_EMAIL not in server_log.requests[-1].body.decode()
    assert answer["choices"][0]["message"]["content"] == prompt


def test_recording_holds_no_raw_value(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    prompt = f"Remember {ALICE}, {ALICE_EMAIL}"
    client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-tokengate-session": "recording-check"},
    )
    files = sorted(gateway.recordings.glob("*recording-check*"))
    assert len(files) == 1
    with files[0].open("rb") as file:
        flows = list(FlowReader(file).stream())
    assert len(flows) == 1
    recorded = flows[0]
    assert ALICE_EMAIL not in recorded.request.get_text()
    assert ALICE_EMAIL not in recorded.response.get_text()
    assert "[EMAIL_ADDRESS_" in recorded.response.get_text()
    assert CLIENT_KEY.encode() not in files[0].read_bytes()
    assert UPSTREAM_KEY.encode() not in files[0].read_bytes()


def test_slow_detection_does_not_stall_other_flows(
    gateway: Gateway, model_server: FakeModelServer
) -> None:
    base = f"http://127.0.0.1:{model_server.port}"
    text = " ".join(f"Dana Reyes{i} met Bruno Petit{i} in Lyon." for i in range(2_500))
    finished: dict[str, float] = {}

    def send_large() -> None:
        with httpx.Client(proxy=gateway.proxy_url, trust_env=False, timeout=120) as client:
            client.post(
                f"{base}/v1/chat/completions",
                json={"model": "fake-model", "messages": [{"role": "user", "content": text}]},
            )
        finished["large"] = time.monotonic()

    worker = threading.Thread(target=send_large)
    worker.start()
    time.sleep(0.5)  # let the large request reach detection first
    with httpx.Client(proxy=gateway.proxy_url, trust_env=False, timeout=120) as client:
        models = client.get(f"{base}/v1/models")
    finished["small"] = time.monotonic()
    worker.join()
    assert models.status_code == 200
    assert finished["small"] < finished["large"]
