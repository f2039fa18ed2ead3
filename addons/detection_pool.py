"""Worker processes that run detection on the pieces of long texts in parallel.

spaCy's recognizer and Presidio's pattern recognizers hold the GIL, so threads do not
spread them over cores. `DetectionPool` keeps worker processes, each with its own
`Detector` loaded once, and hands each of them pieces of a long text.

Workers are started with the "spawn" method, never by forking: the parent may be
mitmdump with its event loop, threads and open sockets, none of which a child should
inherit. The pool starts on first use and stops at `close()` or at interpreter exit.
A worker that dies makes the call fail with `DetectionError` instead of waiting, and
the next call starts new workers.

A spawned worker imports the parent's main module. A program that runs its own code
at import time (a script without `if __name__ == "__main__":`) therefore cannot use a
pool. mitmdump, pytest and the scripts in this repository are safe.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from addons.detection import DetectionSettings, Detector

logger = logging.getLogger(__name__)

# A found span as it crosses the process boundary:
# (start, end, entity_type, score, from_ner).
RawCandidate = tuple[int, int, str, float, bool]


class DetectionError(RuntimeError):
    """Detection could not finish; the text must be treated as unchecked.

    The message never contains text that was being checked.
    """


def default_workers() -> int:
    """Return the number of worker processes for this machine: one per usable CPU,
    or 0 (no pool) on a single CPU."""
    count_cpus = getattr(os, "process_cpu_count", os.cpu_count)
    count = count_cpus() or 1
    return count if count >= 2 else 0


class DetectionPool:
    """A lazily started pool of detection worker processes. Thread-safe."""

    def __init__(self, settings: DetectionSettings, workers: int) -> None:
        if workers < 1:
            raise ValueError("a detection pool needs at least one worker")
        # Workers detect in-process; they never start pools of their own.
        self._settings = replace(settings, workers=0)
        self.workers = workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def detect_chunks(self, chunks: Sequence[str]) -> list[list[RawCandidate]]:
        """Return the candidates of each chunk, computed by the workers.

        Raises DetectionError when a worker dies or the pool is closed.
        """
        executor = self._running_executor()
        try:
            futures = [executor.submit(_detect_chunk, chunk) for chunk in chunks]
            return [future.result() for future in futures]
        except BrokenProcessPool:
            logger.error("a detection worker process stopped; discarding the pool")
            self._discard(executor)
            raise DetectionError(
                "a detection worker process stopped unexpectedly; the text was not "
                "checked. The next call starts new workers; if this repeats, check "
                "the gateway's memory limit and log."
            ) from None

    def start(self) -> None:
        """Start the workers now and wait until each has loaded its model.

        Raises DetectionError when they cannot start.
        """
        self._running_executor()

    def close(self) -> None:
        """Stop the workers and wait for them to exit. Idempotent."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _running_executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise DetectionError("the detection pool is closed")
            if self._executor is not None:
                return self._executor
            executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_initialize_worker,
                initargs=(self._settings,),
            )
            self._executor = executor
        logger.info("starting %d detection worker processes", self.workers)
        # Start every worker now and wait until each has loaded its model, so no
        # request waits for a model load behind another request's piece.
        ready: list[Future[int]] = [
            executor.submit(_worker_ready) for _ in range(self.workers)
        ]
        try:
            for future in ready:
                future.result()
            logger.info("%d detection worker processes ready", self.workers)
        except BrokenProcessPool:
            logger.error("the detection worker processes failed to start")
            self._discard(executor)
            raise DetectionError(
                "the detection worker processes could not start; run the detector "
                "with workers=0 to see the error in this process"
            ) from None
        return executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)


_worker_detector: Detector | None = None


def _initialize_worker(settings: DetectionSettings) -> None:
    # Ctrl-C in a terminal reaches the whole process group. The parent decides when
    # workers stop, so a worker must not die in the middle of a piece.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _worker_detector
    from addons.detection import Detector

    _worker_detector = Detector(settings)


def _worker_ready() -> int:
    return os.getpid()


def _detect_chunk(chunk: str) -> list[RawCandidate]:
    assert _worker_detector is not None, "worker initializer did not run"
    (found,) = _worker_detector._detect_chunks([chunk])
    return [(c.start, c.end, c.entity_type, c.score, c.from_ner) for c in found]
