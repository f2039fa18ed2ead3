"""Benchmark the request pipeline beside plain Presidio on the same texts.

Prints median latencies for a 1 KB chat request, a 32 KB retrieval-style prompt and
turn 20 of a 20-turn conversation. Each is measured through `Pipeline.process_request`
and through a default Presidio `AnalyzerEngine.analyze` over the same text, with the
same spaCy model, in the same process. It also compares replacing spans by direct
splicing with presidio-anonymizer and a custom operator that asks the vault for tokens.

Run: .venv/bin/python scripts/bench_pipeline.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult
from presidio_anonymizer.operators import Operator, OperatorType

from addons.detection import DetectionSettings, Detector
from addons.pipeline import ApiShape, Pipeline
from vault import Vault

FIRST_NAMES = ["Alice", "Bruno", "Carla", "Dana", "Emil", "Farah", "Goran", "Hana"]
LAST_NAMES = ["Novak", "Petit", "Gomez", "Reyes", "Lindqvist", "Osei", "Kowalski"]
CITIES = ["Lisbon", "Denver", "Osaka", "Nairobi", "Krakow", "Montreal"]
FILLER = (
    "The quarterly review covered the migration of the billing service, the backlog "
    "of support tickets and the schedule for the next release. Latency improved after "
    "the cache change, while error rates stayed flat. "
)


def fake_person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def fake_record(rng: random.Random) -> str:
    name = fake_person(rng)
    user = name.lower().replace(" ", ".")
    phone = f"+1 202-555-01{rng.randrange(10, 100)}"
    return (
        f"Customer {name} from {rng.choice(CITIES)} wrote from {user}@example.test "
        f"and asked for a call back at {phone}. "
    )


def chat_text(rng: random.Random, size: int) -> str:
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        parts.append(fake_record(rng) if len(parts) % 3 == 0 else FILLER)
    return "".join(parts)[:size]


def retrieval_prompt(rng: random.Random, size: int) -> str:
    documents: list[str] = []
    index = 1
    while sum(map(len, documents)) < size - 200:
        body = chat_text(rng, 1000)
        documents.append(f"[document {index}]\n{body}\n\n")
        index += 1
    question = (
        "Using only the documents above, list every customer who asked for a call."
    )
    return "".join(documents) + question


def chat_body(contents: list[str]) -> bytes:
    roles = ("user", "assistant")
    messages = [
        {"role": roles[index % 2], "content": content}
        for index, content in enumerate(contents)
    ]
    return json.dumps({"model": "llama-3", "messages": messages}).encode()


def median_seconds(run: Callable[[int], object], runs: int) -> float:
    samples = []
    for attempt in range(runs):
        started = time.perf_counter()
        run(attempt)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def plain_presidio(model: str) -> AnalyzerEngine:
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
        }
    )
    return AnalyzerEngine(nlp_engine=provider.create_engine())


class VaultTokenOperator(Operator):
    """Presidio operator that replaces each entity with its vault token."""

    def operate(self, text: str, params: dict | None = None) -> str:
        assert params is not None
        return params["tokenize"](text, params["entity_type"])

    def validate(self, params: dict | None = None) -> None:
        if params is None or not callable(params.get("tokenize")):
            raise ValueError("the vault_token operator needs a 'tokenize' callable")

    def operator_name(self) -> str:
        return "vault_token"

    def operator_type(self) -> OperatorType:
        return OperatorType.Anonymize


def print_row(label: str, ours: float, presidio: float) -> None:
    ratio = presidio / ours if ours else float("inf")
    print(
        f"{label:<36} pipeline {ours * 1000:8.1f} ms  "
        f"presidio {presidio * 1000:8.1f} ms  speed-up {ratio:6.1f}x"
    )


def bench_requests(
    pipeline: Pipeline, analyzer: AnalyzerEngine, runs: int, rng: random.Random
) -> None:
    cases = [
        ("1 KB chat request", chat_text(rng, 1024)),
        ("32 KB retrieval prompt", retrieval_prompt(rng, 32 * 1024)),
    ]
    for label, text in cases:
        # One untimed call each, so one-time set-up is not part of any median.
        pipeline.process_request(ApiShape.OPENAI_CHAT, chat_body([text]), "warm-up")
        analyzer.analyze(text, "en")

        # A run marker makes every cold request new text, so the cache always misses.
        cold = median_seconds(
            lambda attempt: pipeline.process_request(
                ApiShape.OPENAI_CHAT,
                chat_body([f"{text}\n(run {attempt})"]),
                "bench",
            ),
            runs,
        )
        warm_body = chat_body([text])
        pipeline.process_request(ApiShape.OPENAI_CHAT, warm_body, "bench")
        warm = median_seconds(
            lambda attempt: pipeline.process_request(
                ApiShape.OPENAI_CHAT, warm_body, "bench"
            ),
            runs,
        )
        presidio = median_seconds(
            lambda attempt: analyzer.analyze(f"{text}\n(run {attempt})", "en"), runs
        )
        detect = median_seconds(
            lambda attempt: pipeline.detector.detect(f"{text}\n(run {attempt})"), runs
        )
        print_row(f"{label}, new text", cold, presidio)
        print(f"{'':<36} of which Detector.detect {detect * 1000:9.1f} ms")
        print_row(f"{label}, resent text", warm, presidio)


def bench_conversation(
    pipeline: Pipeline, analyzer: AnalyzerEngine, runs: int, rng: random.Random
) -> None:
    """Measure turn 20 after turns 1 to 19, against analyzing the whole history."""
    turn_costs: list[float] = []
    presidio_costs: list[float] = []
    for attempt in range(runs):
        namespace = f"conversation-{attempt}"
        history: list[str] = []
        for turn in range(1, 21):
            history.append(f"turn {turn}: {chat_text(rng, 500)}")
            body = chat_body(history)
            started = time.perf_counter()
            pipeline.process_request(ApiShape.OPENAI_CHAT, body, namespace)
            elapsed = time.perf_counter() - started
            history.append(f"Noted, turn {turn}: {chat_text(rng, 300)}")
        turn_costs.append(elapsed)

        started = time.perf_counter()
        for content in history[:-1]:
            analyzer.analyze(content, "en")
        presidio_costs.append(time.perf_counter() - started)
    print_row(
        "turn 20 of 20 (39 messages)",
        statistics.median(turn_costs),
        statistics.median(presidio_costs),
    )


def bench_replacement(
    detector: Detector, vault: Vault, runs: int, rng: random.Random
) -> None:
    """Compare direct splicing with presidio-anonymizer for the same spans."""
    text = retrieval_prompt(rng, 32 * 1024)
    spans = detector.detect(text)
    namespace = "replacement"
    items = [(text[span.start : span.end], span.entity_type) for span in spans]
    # Issue the tokens once, so every timed variant looks up existing tokens.
    vault.tokenize_many(items, namespace)

    def splice(attempt: int) -> str:
        batch = vault.tokenize_many(items, namespace)
        pieces = []
        position = 0
        for span, token in zip(spans, batch, strict=True):
            pieces.append(text[position : span.start])
            pieces.append(token)
            position = span.end
        pieces.append(text[position:])
        return "".join(pieces)

    engine = AnonymizerEngine()
    engine.add_anonymizer(VaultTokenOperator)
    results = [
        RecognizerResult(span.entity_type, span.start, span.end, span.score)
        for span in spans
    ]

    def anonymize(tokenize: Callable[[str, str], str], merge: bool) -> str:
        operators = {"DEFAULT": OperatorConfig("vault_token", {"tokenize": tokenize})}
        return engine.anonymize(
            text, results, operators, merge_entities_with_spaces=merge
        ).text

    def per_span(value: str, entity_type: str) -> str:
        return vault.tokenize(value, entity_type, namespace)

    expected = splice(0)
    merged = anonymize(per_span, merge=True)
    unmerged = anonymize(per_span, merge=False)
    print(f"replacement on 32 KB text with {len(spans)} spans:")
    print(
        f"  presidio-anonymizer output equals splice (merge on):  {merged == expected}"
    )
    print(
        f"  presidio-anonymizer output equals splice (merge off): "
        f"{unmerged == expected}"
    )

    # Two adjacent names of the same type: by default the anonymizer merges them into
    # one entity, so both names would share one token.
    pair = "cc Alice Novak Bruno Petit"
    pair_results = [
        RecognizerResult("PERSON", 3, 14, 0.85),
        RecognizerResult("PERSON", 15, 26, 0.85),
    ]
    operated: list[str] = []

    def record_value(value: str, entity_type: str) -> str:
        operated.append(value)
        return value

    operators = {"DEFAULT": OperatorConfig("vault_token", {"tokenize": record_value})}
    engine.anonymize(pair, pair_results, operators)
    print(f"  anonymizer entities for two adjacent names (merge on): {len(operated)}")

    batch_once: dict[tuple[str, str], str] = {}

    def anonymize_batched(attempt: int) -> str:
        batch_once.clear()
        batch_once.update(
            zip(items, vault.tokenize_many(items, namespace), strict=True)
        )
        return anonymize(lambda value, kind: batch_once[(value, kind)], merge=False)

    timings = {
        "splice, one tokenize_many": median_seconds(splice, runs),
        "anonymizer, one tokenize_many": median_seconds(anonymize_batched, runs),
        "anonymizer, tokenize per span": median_seconds(
            lambda attempt: anonymize(per_span, merge=False), runs
        ),
    }
    for label, seconds in timings.items():
        print(f"  {label:<32} {seconds * 1000:8.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per measurement")
    parser.add_argument("--seed", type=int, default=1, help="seed for the fake texts")
    args = parser.parse_args(argv)
    # Plain Presidio's email check makes tldextract try once to download the public
    # suffix list. On an offline host it logs the failure and uses its snapshot.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)

    settings = DetectionSettings()
    started = time.perf_counter()
    detector = Detector(settings)
    analyzer = plain_presidio(settings.spacy_model)
    print(
        f"loaded detector and plain Presidio in {time.perf_counter() - started:.1f} s"
    )
    print(f"spaCy model {settings.spacy_model}, {args.runs} runs per median")

    with tempfile.TemporaryDirectory() as directory:
        vault = Vault.open(
            Path(directory) / "vault.db", Path(directory) / "master.key", create=True
        )
        try:
            pipeline = Pipeline(detector, vault)
            rng = random.Random(args.seed)
            bench_requests(pipeline, analyzer, args.runs, rng)
            bench_conversation(pipeline, analyzer, max(3, args.runs // 2), rng)
            bench_replacement(detector, vault, args.runs, rng)
        finally:
            vault.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
