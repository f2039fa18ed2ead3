"""Presidio analyzer set-up: spaCy NLP engine, offline e-mail check, rule recognizers.

Nothing here touches the network. The spaCy pipeline must be installed as a package
(it is never downloaded), and the e-mail recognizer checks domains against the
public-suffix snapshot bundled with tldextract.
"""

from __future__ import annotations

import bisect
import logging

import regex
import spacy
import tldextract
from presidio_analyzer import (
    AnalysisExplanation,
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
    predefined_recognizers,
)
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import (
    NlpArtifacts,
    NlpEngineProvider,
    SpacyNlpEngine,
)
from spacy.language import Language
from spacy.tokens import Doc

from addons.detection_validators import VALIDATORS
from addons.rules import RecognizerRule, RulesError, RuleSet

logger = logging.getLogger(__name__)

LANGUAGE = "en"
NER_SCORE = 0.85
# spaCy labels mapped to Presidio entity types; every other label is dropped.
NER_LABELS = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "NORP": "NRP",
    "ORG": "ORGANIZATION",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
IGNORED_NER_LABELS = [
    "CARDINAL",
    "EVENT",
    "LANGUAGE",
    "LAW",
    "MONEY",
    "ORDINAL",
    "PERCENT",
    "PRODUCT",
    "QUANTITY",
    "WORK_OF_ART",
]
# Top-level domains that are not in the public-suffix list but name real hosts in
# company networks (RFC 2606 and RFC 6761 names, and common internal suffixes).
PRIVATE_SUFFIXES = (
    "test",
    "example",
    "invalid",
    "localhost",
    "local",
    "internal",
    "intranet",
    "corp",
    "lan",
    "home",
)

_OFFLINE_TLDEXTRACT = tldextract.TLDExtract(
    cache_dir=None,
    suffix_list_urls=(),
    fallback_to_snapshot=True,
    extra_suffixes=PRIVATE_SUFFIXES,
)


class OfflineEmailRecognizer(predefined_recognizers.EmailRecognizer):
    """Presidio's e-mail recognizer, checking domains against the bundled snapshot.

    Presidio's own recognizer calls `tldextract.extract`, which downloads the
    public-suffix list on first use. This one never opens a connection, and it also
    accepts the private suffixes in `PRIVATE_SUFFIXES`.
    """

    def validate_result(self, pattern_text: str) -> bool:
        domain = pattern_text.rsplit("@", 1)[-1]
        return _OFFLINE_TLDEXTRACT(domain).fqdn != ""

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        # "user:password@host" after a URL scheme is URL user information.
        return [
            result
            for result in results
            if not _URL_USERINFO_BEFORE.search(
                text, max(0, result.start - 200), result.start
            )
        ]


_URL_USERINFO_BEFORE = regex.compile(r"[A-Za-z][\w+.-]*://[^\s/@]*\Z")
_DATE_LIKE = regex.compile(
    r"(?:\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})|\d{4}[./-]\d{1,2}[./-]\d{1,2})"
)
_BARE_DIGITS_SCORE = 0.1


class PhoneNumberRecognizer(predefined_recognizers.PhoneRecognizer):
    """Presidio's phone recognizer without dates and with less trust in bare digits.

    libphonenumber accepts "05.10.2024" and a ten-digit Unix time such as
    "1747731000" as possible numbers. Dates are dropped. A digit run with no "+",
    separator or bracket gets a low score, so only a context word such as "phone"
    or "call" lifts it above the default threshold. A span never starts or ends
    inside a run of digits, so no digit of an extension is left in clear.
    """

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        results = []
        # libphonenumber's matcher is slow on long text, so it reads only the
        # windows around digit runs that could be a number.
        for window_start, window_end in _digit_windows(text):
            window = text[window_start:window_end]
            for result in super().analyze(window, entities, None):
                result.start, result.end = _whole_digit_runs(
                    text, result.start + window_start, result.end + window_start
                )
                value = text[result.start : result.end]
                if _DATE_LIKE.fullmatch(value):
                    continue
                if value.isdigit():
                    result.score = _BARE_DIGITS_SCORE
                results.append(result)
        return EntityRecognizer.remove_duplicates(results)


_PHONE_CANDIDATE = regex.compile(r"[+(]?\d[\d\s().\-/]{5,}\d")
# Characters read before and after a candidate. The margin after it covers an
# extension label such as ", extension " and the first digits after it. A digit
# run that crosses either margin is read whole.
_WINDOW_MARGIN_BEFORE = 8
_WINDOW_MARGIN_AFTER = 24


def _digit_windows(text: str) -> list[tuple[int, int]]:
    """Return merged spans around digit runs long enough to be a phone number."""
    windows: list[tuple[int, int]] = []
    for match in _PHONE_CANDIDATE.finditer(text):
        start, end = _whole_digit_runs(
            text,
            max(0, match.start() - _WINDOW_MARGIN_BEFORE),
            min(len(text), match.end() + _WINDOW_MARGIN_AFTER),
        )
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def _whole_digit_runs(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen [start, end) so that it does not cut a run of digits at either end."""
    while 0 < start < len(text) and text[start - 1].isdigit() and text[start].isdigit():
        start -= 1
    while 0 < end < len(text) and text[end - 1].isdigit() and text[end].isdigit():
        end += 1
    return start, end


class IndexedContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's lemma context enhancer with a binary search for the match token.

    The stock enhancer scans the tokens from the start for every result, which is
    quadratic on long texts with many results.
    """

    @staticmethod
    def _find_index_of_match_token(
        word: str, start: int, tokens, tokens_indices: list[int]
    ) -> int:
        ends = (
            tokens.user_data.get(_TOKEN_ENDS_KEY) if isinstance(tokens, Doc) else None
        )
        if ends is None:
            ends = [index + len(token) for index, token in zip(tokens_indices, tokens)]
            if isinstance(tokens, Doc):
                tokens.user_data[_TOKEN_ENDS_KEY] = ends
        position = bisect.bisect_right(ends, start)
        if position >= len(ends):
            raise ValueError(
                f"no token at offset {start} for a {len(word)}-character match"
            )
        return position


_TOKEN_ENDS_KEY = "tokengate_token_ends"


class PipelineSpacyNlpEngine(SpacyNlpEngine):
    """spaCy NLP engine that runs only the named-entity recognizer.

    The English pipelines' `ner` component carries its own token-to-vector layer,
    so the tagger, parser, lemmatizer and shared `tok2vec` do not change its output
    and are excluded for speed. Presidio's context enhancer compares lemmas, so the
    lower-case token text is passed as the lemma.
    """

    engine_name = "spacy"

    def load(self) -> None:
        self.nlp = {}
        for model in self.models:
            self._validate_model_params(model)
            self.nlp[model["lang_code"]] = load_ner_pipeline(model["model_name"])

    def artifacts_from_doc(self, doc: Doc) -> NlpArtifacts:
        """Build Presidio's NLP artifacts from a doc processed elsewhere."""
        return self._doc_to_nlp_artifact(doc, LANGUAGE)

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        entities, scores = self._get_updated_entities(
            list(doc.ents), [NER_SCORE] * len(doc.ents)
        )
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lower_ for token in doc],
            nlp_engine=self,
            language=language,
            scores=scores,
        )


def load_ner_pipeline(model_name: str) -> Language:
    """Load an installed spaCy pipeline with only its `ner` component."""
    if not spacy.util.is_package(model_name):
        raise RulesError(
            f"spaCy pipeline {model_name!r} is not installed; run scripts/setup "
            "(tokengate never downloads models at run time)"
        )
    nlp = spacy.load(model_name)
    if "ner" not in nlp.pipe_names:
        raise RulesError(f"spaCy pipeline {model_name!r} has no 'ner' component")
    ner_config = nlp.get_pipe_config("ner")
    tok2vec_architecture = ner_config.get("model", {}).get("tok2vec", {})
    if "Listener" in str(tok2vec_architecture.get("@architectures", "")):
        # The ner component reads the shared tok2vec, which must stay.
        keep = {"ner", tok2vec_architecture.get("upstream", "tok2vec")}
    else:
        keep = {"ner"}
    nlp.select_pipes(enable=[name for name in nlp.pipe_names if name in keep])
    logger.info("spaCy pipeline %s loaded, running %s", model_name, nlp.pipe_names)
    return nlp


def common_words(nlp: Language) -> frozenset[str]:
    """Return the verbs, adjectives and adverbs of the pipeline's lemmatizer tables.

    The English pipelines ship WordNet's lemma index with their rule lemmatizer.
    Nouns are left out because the index lists many given names and places as
    nouns. Returns an empty set when the pipeline has no such table.
    """
    return _lemma_index_words(nlp, ("verb", "adj", "adv"))


def noun_words(nlp: Language) -> frozenset[str]:
    """Return the nouns of the pipeline's lemmatizer tables ("bob", "error").

    A common word that is also a noun may be a given name ("Bob", "Mark"), so name
    rules drop a single capitalized word only when it is not in this set.
    """
    return _lemma_index_words(nlp, ("noun",))


def _lemma_index_words(
    nlp: Language, parts_of_speech: tuple[str, ...]
) -> frozenset[str]:
    if "lemmatizer" not in nlp.component_names:
        return frozenset()
    lookups = nlp.get_pipe("lemmatizer").lookups
    if not lookups.has_table("lemma_index"):
        return frozenset()
    index = lookups.get_table("lemma_index")
    words: set[str] = set()
    for part_of_speech in parts_of_speech:
        if part_of_speech in index:
            words.update(index[part_of_speech])
    return frozenset(words)


def create_nlp_engine(model_name: str) -> PipelineSpacyNlpEngine:
    configuration = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": LANGUAGE, "model_name": model_name}],
        "ner_model_configuration": {
            "model_to_presidio_entity_mapping": NER_LABELS,
            "labels_to_ignore": IGNORED_NER_LABELS,
            "default_score": NER_SCORE,
            "low_score_entity_names": [],
        },
    }
    provider = NlpEngineProvider(
        nlp_engines=(PipelineSpacyNlpEngine,), nlp_configuration=configuration
    )
    engine = provider.create_engine()
    assert isinstance(engine, PipelineSpacyNlpEngine)
    return engine


class RuleRecognizer(PatternRecognizer):
    """A pattern recognizer built from a rule file entry.

    A pattern with a named group `value` reports only that group as the span, so
    `password=hunter2` yields `hunter2`. The rule's validator decides per match.
    """

    def __init__(self, rule: RecognizerRule) -> None:
        super().__init__(
            supported_entity=rule.entity_type,
            name=rule.name,
            patterns=[
                Pattern(pattern.name, pattern.regex, pattern.score)
                for pattern in rule.patterns
            ],
            context=list(rule.context),
            deny_list=list(rule.deny_list) or None,
            deny_list_score=rule.deny_list_score,
            supported_language=LANGUAGE,
        )
        self.rule = rule
        self._validator = VALIDATORS[rule.validator] if rule.validator else None
        self._deny_regex = (
            regex.compile(
                "|".join(rf"\b{regex.escape(word)}\b" for word in rule.deny_list),
                regex.IGNORECASE,
            )
            if rule.deny_list
            else None
        )

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for pattern in self.rule.patterns:
            for match in pattern.compiled.finditer(text):
                if "value" in pattern.compiled.groupindex:
                    start, end = match.span("value")
                else:
                    start, end = match.span()
                if start >= end:
                    continue
                score = pattern.score
                if self._validator is not None:
                    verdict = self._validator(text[start:end])
                    if verdict is False:
                        continue
                    if verdict is True:
                        score = EntityRecognizer.MAX_SCORE
                results.append(self._result(start, end, score, pattern.name))
        if self._deny_regex is not None:
            for match in self._deny_regex.finditer(text):
                results.append(
                    self._result(
                        match.start(),
                        match.end(),
                        self.rule.deny_list_score,
                        "deny_list",
                    )
                )
        return EntityRecognizer.remove_duplicates(results)

    def _result(
        self, start: int, end: int, score: float, pattern_name: str
    ) -> RecognizerResult:
        return RecognizerResult(
            entity_type=self.rule.entity_type,
            start=start,
            end=end,
            score=score,
            analysis_explanation=AnalysisExplanation(
                recognizer=self.name,
                original_score=score,
                pattern_name=pattern_name,
            ),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


_REPLACED_RECOGNIZERS: dict[str, type[EntityRecognizer]] = {
    "EmailRecognizer": OfflineEmailRecognizer,
    "PhoneRecognizer": PhoneNumberRecognizer,
}


def create_analyzer(
    rule_set: RuleSet, nlp_engine: PipelineSpacyNlpEngine
) -> AnalyzerEngine:
    """Build an AnalyzerEngine with the configured Presidio and rule recognizers."""
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.add_nlp_recognizer(nlp_engine)
    for name in rule_set.presidio_recognizers:
        if name in _REPLACED_RECOGNIZERS:
            registry.add_recognizer(_REPLACED_RECOGNIZERS[name]())
            continue
        recognizer_class = getattr(predefined_recognizers, name)
        try:
            recognizer = recognizer_class(supported_language=LANGUAGE)
        except TypeError as error:
            raise RulesError(
                f"Presidio recognizer {name!r} cannot be created for English: {error}"
            ) from None
        registry.add_recognizer(recognizer)
    for rule in rule_set.recognizers:
        registry.add_recognizer(RuleRecognizer(rule))
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=[LANGUAGE],
        context_aware_enhancer=IndexedContextEnhancer(),
    )
