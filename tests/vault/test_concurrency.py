import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from vault import Vault
from vault import maintenance

WORKER = Path(__file__).with_name("vault_worker.py")


def start_worker(mode, vault_paths, *args):
    path, key_file = vault_paths
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(path), str(key_file), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_threads_get_same_token_for_new_value(vault):
    barrier = threading.Barrier(8)
    tokens = []

    def work():
        barrier.wait()
        tokens.append(vault.tokenize("Zed Shared", "PERSON", "ns"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tokens) == 8
    assert set(tokens) == {"[PERSON_13]"}
    count = vault.connection().execute("SELECT count(*) FROM tokens").fetchone()[0]
    assert count == 1


def test_processes_get_same_tokens_for_new_values(vault, vault_paths):
    start_at = time.time() + 1.5
    workers = [start_worker("same", vault_paths, 150, seed, start_at) for seed in range(4)]
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
        results.append(json.loads(stdout))
    assert all(result == results[0] for result in results)
    assert len(set(results[0].values())) == 150
    count = vault.connection().execute("SELECT count(*) FROM tokens").fetchone()[0]
    assert count == 150


def test_threads_and_processes_never_see_locked(vault, vault_paths):
    start_at = time.time() + 1.5
    workers = [start_worker("mixed", vault_paths, 4, 25, start_at) for _ in range(3)]
    errors = []

    def local_work(number):
        time.sleep(max(0.0, start_at - time.time()))
        try:
            for round_number in range(25):
                value = f"local {number} {round_number}"
                token = vault.tokenize(value, "PERSON", "mixed")
                assert vault.reveal_many([token], "mixed", "gw", "r") == {token: value}
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=local_work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    outputs = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=180)
        assert worker.returncode == 0, stderr
        outputs.append(stdout.strip())
    for thread in threads:
        thread.join()
    assert errors == []
    assert outputs == ["ok 100", "ok 100", "ok 100"]
    assert vault.verify_audit().ok


def test_sigkill_loses_at_most_open_transaction(vault, vault_paths):
    rng = random.Random(7)
    committed: dict[str, str] = {}
    for iteration in range(10):
        worker = start_worker("writer", vault_paths, iteration)
        time.sleep(0.6 + rng.random() * 0.4)
        worker.send_signal(signal.SIGKILL)
        stdout, _ = worker.communicate(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        lines = stdout.splitlines()
        assert len(lines) > 0, f"iteration {iteration}: the writer committed nothing"
        for line in lines:
            try:
                committed.update(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut off by the kill; its batch may or may not be stored

    with Vault.open(*vault_paths) as reopened:
        assert maintenance.integrity_problems(reopened) == []
        restored = reopened.reveal_many(list(committed), "crash", "test", "check")
        assert restored == committed
        assert reopened.verify_audit().ok
        new_token = reopened.tokenize("after the crashes", "PERSON", "crash")
        assert reopened.reveal(new_token, "crash", "test", "check") == "after the crashes"
