"""Detection in worker processes: same spans as in-process, clean failure, shutdown."""

import os
import signal

import pytest

from addons.detection import DetectionError, DetectionSettings, Detector

# Small pieces, so that a short text is split over both workers.
POOL_SETTINGS = DetectionSettings(
    chunk_size=1200, chunk_overlap=200, workers=2, parallel_min_chars=1000
)
RECORD = (
    "Customer Alice Novak from Lisbon wrote from alice.novak@example.test and asked "
    "for a call back at +1 202-555-0147 about card 4111 1111 1111 1111. "
)


def long_text() -> str:
    filler = "The quarterly review covered the billing migration and the backlog. "
    return "".join(RECORD + filler * (index % 4) for index in range(12))


@pytest.fixture(scope="module")
def pooled():
    detector = Detector(POOL_SETTINGS)
    yield detector
    detector.close()


def test_pool_matches_in_process(pooled):
    in_process = Detector(
        DetectionSettings(chunk_size=1200, chunk_overlap=200, workers=0)
    )
    text = long_text()
    expected = in_process.detect(text)
    assert len([s for s in expected if s.entity_type == "EMAIL_ADDRESS"]) == 12
    assert pooled.detect(text) == expected


def test_short_text_stays_in_process(pooled):
    text = "Mail alice.novak@example.test"
    spans = pooled.detect(text)
    assert [(s.start, s.end, s.entity_type) for s in spans] == [
        (5, 29, "EMAIL_ADDRESS")
    ]


def test_killed_worker_raises_then_pool_restarts(pooled):
    text = long_text()
    expected = pooled.detect(text)
    executor = pooled._pool._executor
    assert executor is not None
    victim = next(iter(executor._processes.values()))
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=30)
    with pytest.raises(DetectionError, match="worker process stopped") as caught:
        pooled.detect(text)
    assert "Alice" not in str(caught.value)
    assert pooled.detect(text) == expected


def test_close_stops_workers():
    detector = Detector(POOL_SETTINGS)
    text = long_text()
    expected = detector.detect(text)
    processes = list(detector._pool._executor._processes.values())
    assert len(processes) == 2
    detector.close()
    assert all(not process.is_alive() for process in processes)
    assert detector.detect(text) == expected


def test_negative_workers_rejected():
    with pytest.raises(ValueError, match="workers must be 0"):
        Detector(DetectionSettings(workers=-1))


def test_start_workers_loads_all_before_detect():
    detector = Detector(POOL_SETTINGS)
    detector.start_workers()
    processes = list(detector._pool._executor._processes.values())
    assert len(processes) == 2
    assert all(process.is_alive() for process in processes)
    detector.close()
