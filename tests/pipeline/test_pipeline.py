"""Pipeline: tokenizing requests and restoring responses with a real vault."""

import json
import random
import threading

import pytest

from addons.detection import Span
from addons.pipeline import ApiShape, Pipeline
from addons.shapes import BodyError
from vault import Vault
from vault.tokens import DEFAULT_FORMAT

PERSON_1 = DEFAULT_FORMAT.format("PERSON", 1)
PERSON_2 = DEFAULT_FORMAT.format("PERSON", 2)
EMAIL_1 = DEFAULT_FORMAT.format("EMAIL_ADDRESS", 1)
IMAGE_PART = {
    "type": "image_url",
    "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="},
}


def chat_body(*contents: str) -> bytes:
    roles = ["user", "assistant"]
    messages = [
        {"role": roles[index % 2], "content": content}
        for index, content in enumerate(contents)
    ]
    return json.dumps({"model": "llama-3", "messages": messages}).encode()


def chat_response(content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "llama-3",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()


def response_content(body: bytes) -> str:
    return json.loads(body)["choices"][0]["message"]["content"]


def request_contents(body: bytes) -> list[str]:
    return [message["content"] for message in json.loads(body)["messages"]]


def test_request_chat_exact_body(pipeline: Pipeline) -> None:
    body = chat_body("I am Alice Novak, mail alice@example.test please")
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert json.loads(result.body) == {
        "model": "llama-3",
        "messages": [
            {"role": "user", "content": f"I am {PERSON_1}, mail {EMAIL_1} please"}
        ],
    }
    assert result.counts == {"PERSON": 1, "EMAIL_ADDRESS": 1}
    assert result.tokens == {PERSON_1, EMAIL_1}


def test_request_without_values_unchanged(pipeline: Pipeline) -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "What is 2+2?"}]}'
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert result.body is body
    assert result.counts == {}
    assert result.tokens == set()


def test_multi_turn_same_token(pipeline: Pipeline) -> None:
    body = chat_body(
        "I'm Alice Novak", "Hi Alice Novak", "cc Bruno Petit and Alice Novak"
    )
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert request_contents(result.body) == [
        f"I'm {PERSON_1}",
        f"Hi {PERSON_1}",
        f"cc {PERSON_2} and {PERSON_1}",
    ]


def conversation_tokens(contents: list[str]) -> tuple[str, str]:
    """Return the tokens of Alice Novak and Bruno Petit in the tokenized chat."""
    first = DEFAULT_FORMAT.find(contents[0])
    last = DEFAULT_FORMAT.find(contents[2])
    assert len(first) == 1
    assert len(last) == 2
    return first[0].token, last[0].token


@pytest.mark.parametrize("cache_size", [0, 10000])
def test_multi_turn_consistent_across_threads(
    detector, vault: Vault, cache_size: int
) -> None:
    pipeline = Pipeline(detector, vault, cache_size=cache_size)
    turns = [
        chat_body("I'm Alice Novak"),
        chat_body("I'm Alice Novak", "Hi Alice Novak"),
        chat_body(
            "I'm Alice Novak", "Hi Alice Novak", "cc Bruno Petit and Alice Novak"
        ),
        chat_body("cc Bruno Petit and Alice Novak"),
    ]
    jobs = turns * 3
    random.Random(7).shuffle(jobs)
    results: list[bytes] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(jobs))

    def run(body: bytes) -> None:
        barrier.wait()
        output = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-c10").body
        with lock:
            results.append(output)

    threads = [threading.Thread(target=run, args=(body,)) for body in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == len(jobs)
    full = [
        request_contents(body)
        for body in results
        if len(json.loads(body)["messages"]) == 3
    ]
    alice, bruno = conversation_tokens(full[0])
    assert alice != bruno
    for contents in full:
        assert contents == [f"I'm {alice}", f"Hi {alice}", f"cc {bruno} and {alice}"]
    for body in results:
        for content in request_contents(body):
            for match in DEFAULT_FORMAT.find(content):
                assert match.token in (alice, bruno)


def test_tool_call_arguments_tokenized(pipeline: Pipeline) -> None:
    body = json.dumps(
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": "send_mail",
                                "arguments": '{"to":"alice@example.test"}',
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    message = json.loads(result.body)["messages"][0]
    arguments = message["tool_calls"][0]["function"]["arguments"]
    assert arguments == '{"to":"' + EMAIL_1 + '"}'
    assert json.loads(arguments) == {"to": EMAIL_1}
    assert message["content"] is None
    assert message["tool_calls"][0]["id"] == "call_1"


def test_image_parts_byte_identical(pipeline: Pipeline) -> None:
    content = [{"type": "text", "text": "I am Alice Novak"}, IMAGE_PART]
    body = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": content}]}
    ).encode()
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert json.loads(result.body)["messages"][0]["content"] == [
        {"type": "text", "text": f"I am {PERSON_1}"},
        IMAGE_PART,
    ]
    assert b'"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="' in result.body


def test_token_ids_prompt_untouched(pipeline: Pipeline) -> None:
    body = b'{"model":"m","prompt":[101,2023,102]}'
    result = pipeline.process_request(ApiShape.OPENAI_COMPLETIONS, body, "ns-a")
    assert result.body == body


def test_issued_token_stays_as_is(pipeline: Pipeline) -> None:
    first = pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body("I am Alice Novak"), "ns-a"
    )
    assert request_contents(first.body) == [f"I am {PERSON_1}"]
    body = chat_body(f"Tell {PERSON_1} about it")
    second = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert request_contents(second.body) == [f"Tell {PERSON_1} about it"]
    assert second.counts == {}


def test_token_oracle_not_restored(pipeline: Pipeline) -> None:
    # Another namespace has real tokens for real values.
    other = pipeline.process_request(
        ApiShape.OPENAI_CHAT,
        chat_body("I am Alice Novak, mail alice@example.test"),
        "ns-victim",
    )
    assert request_contents(other.body) == [f"I am {PERSON_1}, mail {EMAIL_1}"]

    probe = f"Repeat exactly: [PERSON_1] [EMAIL_ADDRESS_1] {PERSON_1} {EMAIL_1}"
    request = pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body(probe), "ns-attacker"
    )
    assert request_contents(request.body) == [probe]
    assert request.counts == {}

    echo = f"[PERSON_1] [EMAIL_ADDRESS_1] {PERSON_1} {EMAIL_1}"
    response = pipeline.process_response(
        ApiShape.OPENAI_CHAT, chat_response(echo), "ns-attacker", "mallory"
    )
    assert response_content(response.client_body) == echo
    assert response_content(response.recorded_body) == echo
    assert response.restored == 0
    assert response.unrestored == 2


def test_round_trip_byte_identical(pipeline: Pipeline) -> None:
    texts = [
        "Dana Reyes - dana.reyes@example.test (Dana's desk)",
        "id 7f3c9a10-1b2c-4d5e-8046-1297901ea002, due 05.10.2024, ts 1747731000",
        "IBAN DE89 3704 0044 0532 0130 00 REF INVOICE",
        "peer 2001:db8:0:0:0:ff00:42:8329, lo ::1, code std::vector<int>",
        "card 4111 1111 1111 1111 for Jonas Ferreira-Ek, tel +1 202-555-0143",
    ]
    for index, text in enumerate(texts):
        namespace = f"ns-round-{index}"
        request = pipeline.process_request(
            ApiShape.OPENAI_CHAT, chat_body(text), namespace
        )
        (tokenized,) = request_contents(request.body)
        response = pipeline.process_response(
            ApiShape.OPENAI_CHAT, chat_response(tokenized), namespace, "alice"
        )
        assert response_content(response.client_body) == text
        assert response.unrestored == 0


def test_round_trip_tokenizes_values(pipeline: Pipeline) -> None:
    text = "Dana Reyes - dana.reyes@example.test (Dana's desk)"
    request = pipeline.process_request(ApiShape.OPENAI_CHAT, chat_body(text), "ns-a")
    (tokenized,) = request_contents(request.body)
    assert "dana.reyes@example.test" not in tokenized
    assert "Dana Reyes" not in tokenized
    assert request.counts["EMAIL_ADDRESS"] == 1


def test_response_model_value_tokenized(pipeline: Pipeline) -> None:
    pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body("I am Alice Novak"), "ns-a"
    )
    body = chat_response(f"Hello {PERSON_1}, write to carol.diaz@example.test")
    response = pipeline.process_response(ApiShape.OPENAI_CHAT, body, "ns-a", "alice")
    assert (
        response_content(response.recorded_body)
        == f"Hello {PERSON_1}, write to {EMAIL_1}"
    )
    assert (
        response_content(response.client_body)
        == f"Hello Alice Novak, write to {EMAIL_1}"
    )
    assert response.counts == {"EMAIL_ADDRESS": 1}
    assert response.restored == 1
    assert response.unrestored == 1


def test_response_model_echo_of_client_value(pipeline: Pipeline) -> None:
    pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body("I am Alice Novak"), "ns-a"
    )
    body = chat_response("Nice to meet you, Alice Novak.")
    response = pipeline.process_response(ApiShape.OPENAI_CHAT, body, "ns-a", "alice")
    assert response_content(response.recorded_body) == f"Nice to meet you, {PERSON_1}."
    assert response_content(response.client_body) == "Nice to meet you, Alice Novak."


def test_restore_policy_none_reveals_nothing(detector, vault: Vault) -> None:
    pipeline = Pipeline(detector, vault, restore_origins=())
    pipeline.process_request(ApiShape.OPENAI_CHAT, chat_body("I am Alice Novak"), "ns-a")
    entries_before = audit_entries(vault)
    body = chat_response(f"Hello {PERSON_1}")
    response = pipeline.process_response(ApiShape.OPENAI_CHAT, body, "ns-a", "alice")
    assert response_content(response.client_body) == f"Hello {PERSON_1}"
    assert response.unrestored == 1
    assert audit_entries(vault) == entries_before


def audit_entries(vault: Vault) -> int:
    return vault.connection().execute("SELECT count(*) FROM audit_log").fetchone()[0]


def test_restore_origin_model_when_allowed(detector, vault: Vault) -> None:
    pipeline = Pipeline(detector, vault, restore_origins=("client", "model"))
    body = chat_response("write to carol.diaz@example.test")
    response = pipeline.process_response(ApiShape.OPENAI_CHAT, body, "ns-a", "alice")
    assert response_content(response.recorded_body) == f"write to {EMAIL_1}"
    assert response_content(response.client_body) == "write to carol.diaz@example.test"


def test_restore_lenient_and_mangled(pipeline: Pipeline) -> None:
    pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body("I am Alice Novak"), "ns-a"
    )
    serial_and_check = PERSON_1[len("[PERSON_") : -1]
    lowered = f"[person_{serial_and_check}]"
    spaced = f"[ PERSON _ {serial_and_check} ]"
    lost_bracket = f"PERSON_{serial_and_check}]"
    wrong_check = str((int(serial_and_check[-1]) + 1) % 10)
    mangled = f"[PERSON_{serial_and_check[:-1]}{wrong_check}]"
    text = f"a {lowered} b {spaced} c {lost_bracket} d {mangled}"
    body = chat_response(text)
    response = pipeline.process_response(ApiShape.OPENAI_CHAT, body, "ns-a", "alice")
    assert response_content(response.client_body) == (
        f"a Alice Novak b Alice Novak c Alice Novak d {mangled}"
    )
    assert response.restored == 3
    assert response.unrestored == 1


def test_text_processor_counts(pipeline: Pipeline) -> None:
    pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body("I am Alice Novak"), "ns-a"
    )
    processor = pipeline.response_text_processor("ns-a", "alice")
    recorded = processor.tokenize(f"Hi {PERSON_1}, mail carol.diaz@example.test")
    assert recorded == f"Hi {PERSON_1}, mail {EMAIL_1}"
    assert processor.restore(recorded) == f"Hi Alice Novak, mail {EMAIL_1}"
    assert processor.counts == {"EMAIL_ADDRESS": 1}
    assert processor.restored == 1
    assert processor.unrestored == 1


def test_cache_hits_on_resent_history(pipeline: Pipeline) -> None:
    pipeline.process_request(ApiShape.OPENAI_CHAT, chat_body("I'm Alice Novak"), "ns-a")
    hits_before = pipeline.cache.hits
    body = chat_body("I'm Alice Novak", "Hi Alice Novak")
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert pipeline.cache.hits == hits_before + 1
    assert request_contents(result.body) == [f"I'm {PERSON_1}", f"Hi {PERSON_1}"]
    assert result.counts == {"PERSON": 2}


def test_cache_separate_per_namespace(pipeline: Pipeline) -> None:
    pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body("I am Bruno Petit"), "ns-a"
    )
    pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body("I am Alice Novak"), "ns-b"
    )
    result = pipeline.process_request(
        ApiShape.OPENAI_CHAT, chat_body("I am Alice Novak"), "ns-a"
    )
    assert request_contents(result.body) == [f"I am {PERSON_2}"]


def test_cache_size_bounded(detector, vault: Vault) -> None:
    pipeline = Pipeline(detector, vault, cache_size=2)
    for name in ("Alice Novak", "Bruno Petit", "Carla Gomez"):
        pipeline.process_request(ApiShape.OPENAI_CHAT, chat_body(f"I am {name}"), "ns")
    assert len(pipeline.cache) == 2


def test_body_error_propagates(pipeline: Pipeline) -> None:
    with pytest.raises(BodyError):
        pipeline.process_request(ApiShape.OPENAI_CHAT, b'{"messages": [', "ns-a")


class FixedSpans:
    """Detector stand-in that marks given substrings, as a strict policy might."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def detect(self, text: str) -> list[Span]:
        spans = []
        for value, entity_type in self.values.items():
            start = text.find(value)
            if start >= 0:
                spans.append(Span(start, start + len(value), entity_type, 1.0))
        return sorted(spans)


def test_masked_identifiers_restore_exactly(vault: Vault) -> None:
    text = "id 7f3c9a10-1b2c-4d5e-8046-1297901ea002, due 05.10.2024, ts 1747731000"
    detector = FixedSpans(
        {
            "7f3c9a10-1b2c-4d5e-8046-1297901ea002": "CUSTOMER_ID",
            "05.10.2024": "PHONE_NUMBER",
            "1747731000": "PHONE_NUMBER",
        }
    )
    pipeline = Pipeline(detector, vault)
    request = pipeline.process_request(ApiShape.PLAIN_TEXT, text.encode(), "ns-a")
    phone_1 = DEFAULT_FORMAT.format("PHONE_NUMBER", 1)
    phone_2 = DEFAULT_FORMAT.format("PHONE_NUMBER", 2)
    customer_1 = DEFAULT_FORMAT.format("CUSTOMER_ID", 1)
    assert request.body.decode() == f"id {customer_1}, due {phone_1}, ts {phone_2}"
    response = pipeline.process_response(
        ApiShape.PLAIN_TEXT, request.body, "ns-a", "alice"
    )
    assert response.client_body == text.encode()
    assert response.restored == 3
