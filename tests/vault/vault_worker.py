"""A separate process that uses a vault, for concurrency and crash tests.

Usage: python vault_worker.py MODE VAULT KEY_FILE [ARGS...]
  same N SEED START       tokenize N shared values in a shuffled order, print JSON
  mixed THREADS ROUNDS START
                          threads tokenize and reveal; print "ok COUNT" or the error
  writer SEED             commit batches forever, printing each after its commit
"""

import json
import random
import sys
import threading
import time
from pathlib import Path

from vault import Vault


def wait_until(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def run_same(vault: Vault, count: int, seed: int, start_at: float) -> None:
    values = [f"shared person {number}" for number in range(count)]
    random.Random(seed).shuffle(values)
    wait_until(start_at)
    tokens = {value: vault.tokenize(value, "PERSON", "shared") for value in values}
    print(json.dumps(tokens))


def run_mixed(vault: Vault, threads: int, rounds: int, start_at: float) -> None:
    errors: list[str] = []
    done = []

    def work(worker: int) -> None:
        try:
            for round_number in range(rounds):
                value = f"value {worker % 2} {round_number}"
                token = vault.tokenize(value, "PERSON", "mixed")
                batch = vault.tokenize_many(
                    [(f"{value} a", "LOCATION"), (f"{value} b", "EMAIL_ADDRESS")], "mixed"
                )
                restored = vault.reveal_many([token, *batch], "mixed", "gw", "restore")
                if restored[token] != value:
                    errors.append(f"wrong value for {token}")
                done.append(1)
        except Exception as error:  # reported to the test through stdout
            errors.append(f"{type(error).__name__}: {error}")

    wait_until(start_at)
    workers = [threading.Thread(target=work, args=(number,)) for number in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    print("errors " + json.dumps(errors) if errors else f"ok {len(done)}")


def run_writer(vault: Vault, seed: int) -> None:
    rng = random.Random(seed)
    batch_number = 0
    while True:
        batch_number += 1
        values = [f"w{seed} b{batch_number} v{index} {rng.random()}" for index in range(20)]
        tokens = vault.tokenize_many([(value, "PERSON") for value in values], "crash")
        print(json.dumps(dict(zip(tokens, values))), flush=True)


def main() -> None:
    mode, vault_path, key_file, *args = sys.argv[1:]
    vault = Vault.open(Path(vault_path), Path(key_file))
    if mode == "same":
        run_same(vault, int(args[0]), int(args[1]), float(args[2]))
    elif mode == "mixed":
        run_mixed(vault, int(args[0]), int(args[1]), float(args[2]))
    elif mode == "writer":
        run_writer(vault, int(args[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    vault.close()


if __name__ == "__main__":
    main()
