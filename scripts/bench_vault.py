"""Measure vault latency: tokenize of a new value, reveal, and one large batch.

Usage: .venv/bin/python scripts/bench_vault.py [--rounds N] [--batch N]
Runs against a fresh vault in a temporary directory and prints medians in ms.
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from vault import Vault


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="single calls to time")
    parser.add_argument("--batch", type=int, default=10000, help="values in the batch")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        vault = Vault.open(
            Path(directory) / "vault.db", Path(directory) / "master.key", create=True
        )
        tokenize_times = []
        tokens = []
        for number in range(args.rounds):
            start = time.perf_counter()
            tokens.append(vault.tokenize(f"person {number}", "PERSON", "bench"))
            tokenize_times.append(time.perf_counter() - start)

        reveal_times = []
        for token in tokens:
            start = time.perf_counter()
            vault.reveal(token, "bench", "bench", "benchmark")
            reveal_times.append(time.perf_counter() - start)

        reveal_many_times = []
        for offset in range(0, len(tokens), 10):
            start = time.perf_counter()
            vault.reveal_many(tokens[offset : offset + 10], "bench", "bench", "benchmark")
            reveal_many_times.append(time.perf_counter() - start)

        items = [(f"batch value {number}", "EMAIL_ADDRESS") for number in range(args.batch)]
        start = time.perf_counter()
        vault.tokenize_many(items, "bench-batch")
        batch_seconds = time.perf_counter() - start
        vault.close()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}")
    print(f"tokenize new value, median of {args.rounds}: {median_ms(tokenize_times):.3f} ms")
    print(f"reveal, median of {args.rounds}: {median_ms(reveal_times):.3f} ms")
    print(f"reveal_many of 10 tokens, median: {median_ms(reveal_many_times):.3f} ms")
    print(f"tokenize_many of {args.batch} new values: {batch_seconds:.3f} s")


if __name__ == "__main__":
    main()
