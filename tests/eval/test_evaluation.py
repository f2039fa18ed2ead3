"""Quality targets on the synthetic evaluation set, against plain Presidio."""

import pytest

from scripts.evaluate import (
    NAME_TYPES,
    STRUCTURED_TYPES,
    load_dataset,
    presidio_detect,
    score,
    tokengate_detect,
)

PERSON_RECALL_FLOOR = 0.85
MIN_SPANS = 600


@pytest.fixture(scope="module")
def records():
    return load_dataset()


@pytest.fixture(scope="module")
def tokengate(records):
    return score(records, tokengate_detect())


@pytest.fixture(scope="module")
def presidio(records):
    return score(records, presidio_detect())


def test_dataset_has_enough_spans(records):
    assert sum(len(record["spans"]) for record in records) >= MIN_SPANS


@pytest.mark.parametrize("entity_type", STRUCTURED_TYPES)
def test_structured_recall(tokengate, entity_type):
    assert tokengate.recall(entity_type) >= 0.98


def test_location_recall(tokengate):
    assert tokengate.recall("LOCATION") >= 0.85


def test_person_recall(tokengate):
    assert tokengate.recall("PERSON") >= PERSON_RECALL_FLOOR


def test_overall_precision(tokengate):
    assert tokengate.precision() >= 0.90


@pytest.mark.parametrize("entity_type", NAME_TYPES)
def test_name_precision(tokengate, entity_type):
    assert tokengate.precision(entity_type) >= 0.90


@pytest.mark.parametrize("entity_type", STRUCTURED_TYPES + NAME_TYPES)
def test_recall_not_below_presidio(tokengate, presidio, entity_type):
    assert tokengate.recall(entity_type) >= presidio.recall(entity_type)


def test_precision_not_below_presidio(tokengate, presidio):
    assert tokengate.precision() >= presidio.precision()
