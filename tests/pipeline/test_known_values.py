"""Copies of values the namespace already stores, found where detection misses them."""

import json

import pytest

from addons.detection import Detector, Span
from addons.known_values import KnownSpan, KnownValueSweep
from addons.pipeline import ApiShape, Pipeline
from vault import Vault
from vault.tokens import DEFAULT_FORMAT

PERSON_1 = DEFAULT_FORMAT.format("PERSON", 1)
PERSON_2 = DEFAULT_FORMAT.format("PERSON", 2)
LOCATION_1 = DEFAULT_FORMAT.format("LOCATION", 1)
MISSED = "Later alice novak signed it."


def chat_body(*contents: str) -> bytes:
    messages = [{"role": "user", "content": content} for content in contents]
    return json.dumps({"model": "llama-3", "messages": messages}).encode()


def chat_response(content: str) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    return json.dumps({"id": "c1", "choices": [choice]}).encode()


def request_contents(body: bytes) -> list[str]:
    return [message["content"] for message in json.loads(body)["messages"]]


def response_content(body: bytes) -> str:
    return json.loads(body)["choices"][0]["message"]["content"]


def tokenize(pipeline: Pipeline, namespace: str, *contents: str) -> list[str]:
    body = chat_body(*contents)
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, namespace)
    return request_contents(result.body)


class LowerCaseBlind:
    """The real detector, minus every span written in lower case.

    Keeps these tests about the sweep when the detector learns to find some lower-case
    names by itself.
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def detect(self, text: str) -> list[Span]:
        spans = self.detector.detect(text)
        return [span for span in spans if not text[span.start : span.end].islower()]


def test_detector_misses_lowercase_copy(detector: Detector) -> None:
    assert detector.detect(MISSED) == []


def test_same_request_lowercase_copy(pipeline: Pipeline) -> None:
    text = "Alice Novak wrote this. Later alice novak signed it."
    body = chat_body(text)
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert request_contents(result.body) == [
        f"{PERSON_1} wrote this. Later {PERSON_1} signed it."
    ]
    assert result.counts == {"PERSON": 2}
    assert result.tokens == {PERSON_1}


def test_same_request_other_message(pipeline: Pipeline) -> None:
    contents = tokenize(pipeline, "ns-a", "I'm Alice Novak", MISSED)
    assert contents == [f"I'm {PERSON_1}", f"Later {PERSON_1} signed it."]


def test_across_turns_lowercase_copy(pipeline: Pipeline) -> None:
    assert tokenize(pipeline, "ns-a", "I'm Alice Novak") == [f"I'm {PERSON_1}"]
    assert tokenize(pipeline, "ns-a", "remind alice novak") == [f"remind {PERSON_1}"]
    assert tokenize(pipeline, "ns-a", MISSED) == [f"Later {PERSON_1} signed it."]


def test_across_turns_without_lowercase_detection(
    detector: Detector, vault: Vault
) -> None:
    pipeline = Pipeline(LowerCaseBlind(detector), vault)
    assert tokenize(pipeline, "ns-a", "I'm Alice Novak") == [f"I'm {PERSON_1}"]
    assert tokenize(pipeline, "ns-a", "remind alice novak") == [f"remind {PERSON_1}"]


def test_location_lowercase_copy(detector: Detector, vault: Vault) -> None:
    pipeline = Pipeline(LowerCaseBlind(detector), vault)
    assert tokenize(pipeline, "ns-a", "I moved to Lisbon") == [
        f"I moved to {LOCATION_1}"
    ]
    assert tokenize(pipeline, "ns-a", "back in lisbon now") == [
        f"back in {LOCATION_1} now"
    ]


def test_unknown_lowercase_name_kept(detector: Detector, vault: Vault) -> None:
    pipeline = Pipeline(LowerCaseBlind(detector), vault)
    tokenize(pipeline, "ns-a", "I'm Alice Novak")
    body = chat_body("remind bruno petit and alice")
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert request_contents(result.body) == ["remind bruno petit and alice"]
    assert result.counts == {}


def test_other_namespace_values_unused(detector: Detector, vault: Vault) -> None:
    pipeline = Pipeline(LowerCaseBlind(detector), vault)
    tokenize(pipeline, "ns-a", "I'm Alice Novak")
    body = chat_body("remind alice novak")
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-b")
    assert request_contents(result.body) == ["remind alice novak"]
    assert result.counts == {}


def test_cached_message_swept_again(pipeline: Pipeline) -> None:
    assert tokenize(pipeline, "ns-a", MISSED) == [MISSED]
    tokenize(pipeline, "ns-a", "I'm Alice Novak")
    hits_before = pipeline.cache.hits
    contents = tokenize(pipeline, "ns-a", MISSED, "thanks")
    assert pipeline.cache.hits == hits_before + 1
    assert contents == [f"Later {PERSON_1} signed it.", "thanks"]


def test_swept_message_cached(pipeline: Pipeline) -> None:
    tokenize(pipeline, "ns-a", "I'm Alice Novak")
    tokenize(pipeline, "ns-a", MISSED)
    hits_before = pipeline.cache.hits
    body = chat_body(MISSED)
    result = pipeline.process_request(ApiShape.OPENAI_CHAT, body, "ns-a")
    assert pipeline.cache.hits == hits_before + 1
    assert request_contents(result.body) == [f"Later {PERSON_1} signed it."]
    assert result.counts == {"PERSON": 1}


def test_token_shaped_text_untouched(pipeline: Pipeline, vault: Vault) -> None:
    assert vault.tokenize("Person", "PERSON", "ns-a") == PERSON_1
    mangled = PERSON_1.lower().replace("_", " _ ")
    text = f"ask person about {PERSON_1}, [PERSON_2], [person_99] and {mangled}"
    assert tokenize(pipeline, "ns-a", text) == [
        f"ask {PERSON_1} about {PERSON_1}, [PERSON_2], [person_99] and {mangled}"
    ]


def test_longest_known_value_wins(pipeline: Pipeline, vault: Vault) -> None:
    assert vault.tokenize("Alice", "PERSON", "ns-a") == PERSON_1
    assert vault.tokenize("Alice Novak", "PERSON", "ns-a") == PERSON_2
    assert tokenize(pipeline, "ns-a", MISSED) == [f"Later {PERSON_2} signed it."]


def test_stop_word_value_not_swept(pipeline: Pipeline, vault: Vault) -> None:
    assert vault.tokenize("Will", "PERSON", "ns-a") == PERSON_1
    assert tokenize(pipeline, "ns-a", "will you sign it") == ["will you sign it"]


def test_round_trip_byte_identical(pipeline: Pipeline) -> None:
    tokenize(pipeline, "ns-a", "remind alice novak")
    text = f"{MISSED} Ask alice novak's team."
    (tokenized,) = tokenize(pipeline, "ns-a", text)
    assert tokenized == f"Later {PERSON_1} signed it. Ask {PERSON_1}'s team."
    response = pipeline.process_response(
        ApiShape.OPENAI_CHAT, chat_response(tokenized), "ns-a", "alice"
    )
    assert response_content(response.client_body) == text
    assert response.restored == 2
    assert response.unrestored == 0


def test_round_trip_first_spelling(pipeline: Pipeline) -> None:
    text = "Alice Novak wrote this. Later alice novak signed it."
    (tokenized,) = tokenize(pipeline, "ns-a", text)
    response = pipeline.process_response(
        ApiShape.OPENAI_CHAT, chat_response(tokenized), "ns-a", "alice"
    )
    assert response_content(response.client_body) == (
        "Alice Novak wrote this. Later Alice Novak signed it."
    )


def test_response_lowercase_copy_recorded(pipeline: Pipeline) -> None:
    tokenize(pipeline, "ns-a", "I'm Alice Novak")
    response = pipeline.process_response(
        ApiShape.OPENAI_CHAT, chat_response(MISSED), "ns-a", "alice"
    )
    assert response_content(response.recorded_body) == f"Later {PERSON_1} signed it."
    assert response_content(response.client_body) == "Later Alice Novak signed it."
    assert response.counts == {"PERSON": 1}


def test_sweep_spans_and_joined_words(vault: Vault) -> None:
    vault.tokenize("Jonas Ferreira-Ek", "PERSON", "ns-a")
    vault.tokenize("St. Louis", "LOCATION", "ns-a")
    sweep = KnownValueSweep(vault, DEFAULT_FORMAT)
    texts = ["cc jonas ferreira-ek in st. louis", f"{PERSON_1} st louis"]
    assert sweep.find(texts, "ns-a") == [
        [KnownSpan(3, 20, "PERSON"), KnownSpan(24, 33, "LOCATION")],
        [],
    ]


def test_sweep_rejects_non_name_type(vault: Vault) -> None:
    with pytest.raises(ValueError, match="EMAIL_ADDRESS"):
        KnownValueSweep(vault, DEFAULT_FORMAT, ("PERSON", "EMAIL_ADDRESS"))
