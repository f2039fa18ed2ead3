"""The vault commands run as a user runs them: the installed `tokengate` program."""

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

TOKENGATE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "tokengate"

COMMANDS = ["init", "stats", "rotate", "purge", "erase", "verify", "reveal"]


def tokengate(*args, env_extra=None):
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOKENGATE_")}
    env.update(env_extra or {})
    return subprocess.run(
        [str(TOKENGATE), *map(str, args)], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def paths(tmp_path):
    return ["--vault", tmp_path / "vault.db", "--key-file", tmp_path / "master.key"]


@pytest.fixture
def initialized(paths):
    result = tokengate("init", *paths)
    assert result.returncode == 0, result.stderr
    return paths


def tokenize(paths, value, namespace="ns"):
    from vault import Vault

    with Vault.open(Path(paths[1]), Path(paths[3])) as vault:
        return vault.tokenize(value, "PERSON", namespace)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    # In-process, because each subprocess start costs the whole CLI import time.
    from scripts.cli import main

    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    output = capsys.readouterr().out
    assert "--vault" in output
    assert "--key-file" in output


def test_init_creates_private_key(tmp_path, paths):
    result = tokengate("init", *paths, "--ttl", "PERSON=7")
    assert result.returncode == 0, result.stderr
    assert "created master key" in result.stdout
    assert "PERSON=7 days" in result.stdout
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600


def test_init_twice_is_rejected(initialized):
    result = tokengate("init", *initialized)
    assert result.returncode == 1
    assert "a vault already exists" in result.stderr


def test_env_var_names_key_file(tmp_path):
    env = {"TOKENGATE_KEY_FILE": str(tmp_path / "k"), "TOKENGATE_VAULT": str(tmp_path / "v.db")}
    assert tokengate("init", env_extra=env).returncode == 0
    assert (tmp_path / "k").exists()
    assert tokengate("stats", env_extra=env).returncode == 0


def test_reveal_prints_value_and_audits(initialized):
    token = tokenize(initialized, "Alice Example")
    result = tokengate(
        "reveal", token, "--namespace", "ns", "--purpose", "ticket 9", "--actor", "ann",
        *initialized,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Alice Example\n"
    denied = tokengate("reveal", token, "--namespace", "other", "--purpose", "x", *initialized)
    assert denied.returncode == 1
    assert "another namespace" in denied.stderr
    assert "Alice" not in denied.stderr
    verify = tokengate("verify", *initialized)
    assert verify.returncode == 0
    assert "audit chain: ok" in verify.stdout


def test_rotate_purge_erase_stats(initialized):
    token = tokenize(initialized, "Bob Example")
    rotated = tokengate("rotate", *initialized)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 values re-encrypted" in rotated.stdout
    master = tokengate("rotate", "--master", *initialized)
    assert master.returncode == 0, master.stderr
    assert "the old key is kept in" in master.stdout
    reveal = tokengate("reveal", token, "--namespace", "ns", "--purpose", "p", *initialized)
    assert reveal.stdout == "Bob Example\n"
    purged = tokengate("purge", *initialized)
    assert purged.stdout == "deleted 0 expired tokens\n"
    stats = tokengate("stats", *initialized)
    assert "tokens:          1 (0 expired)" in stats.stdout
    erased = tokengate("erase", "--namespace", "ns", *initialized)
    assert erased.stdout == "deleted 1 tokens of namespace ns\n"
    assert tokengate("verify", *initialized).returncode == 0


def test_wrong_key_fails_cleanly(tmp_path, initialized):
    other = tmp_path / "other.key"
    assert tokengate("init", "--vault", tmp_path / "b.db", "--key-file", other).returncode == 0
    result = tokengate("stats", "--vault", initialized[1], "--key-file", other)
    assert result.returncode == 1
    assert f"the key in {other} does not match this vault" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_key_file_names_init_command(tmp_path):
    vault, key = tmp_path / "v.db", tmp_path / "missing.key"
    result = tokengate("stats", "--vault", vault, "--key-file", key)
    assert result.returncode == 1
    assert f"no key file at {key}" in result.stderr
    assert f"`tokengate init --vault {vault} --key-file {key}`" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_key_of_existing_vault(initialized):
    os.unlink(initialized[3])
    result = tokengate("stats", *initialized)
    assert result.returncode == 1
    assert f"the key file {initialized[3]} does not exist" in result.stderr
    assert "restore its key file from your backup" in result.stderr


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_shared_key_file_rejected(initialized, mode):
    os.chmod(initialized[3], mode)
    result = tokengate("stats", *initialized)
    assert result.returncode == 1
    assert f"run `chmod 600 {initialized[3]}`" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_key_file_rejected(initialized):
    with open(initialized[3], "w") as file:
        file.write("not a key\n")
    result = tokengate("stats", *initialized)
    assert result.returncode == 1
    assert "does not contain a tokengate master key" in result.stderr


@pytest.mark.parametrize("command", ["stats", "rotate"])
def test_corrupt_database_left_unchanged(initialized, command):
    vault_path = initialized[1]
    with open(vault_path, "r+b") as file:
        file.write(b"garbage!" * 4)
    before = hashlib.sha256(vault_path.read_bytes()).hexdigest()
    result = tokengate(command, *initialized)
    assert result.returncode == 1
    assert "not a SQLite database" in result.stderr
    assert "Traceback" not in result.stderr
    assert hashlib.sha256(vault_path.read_bytes()).hexdigest() == before


def test_verify_reports_tampered_entry(initialized):
    import sqlite3

    tokenize(initialized, "Carol")
    connection = sqlite3.connect(initialized[1])
    connection.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    connection.commit()
    connection.close()
    result = tokengate("verify", *initialized)
    assert result.returncode == 1
    assert "audit chain: broken at entry 2" in result.stdout


def damage_tokens_root_page(vault_path):
    """Overwrite the root page of the tokens table, which opening the vault never reads."""
    import sqlite3

    connection = sqlite3.connect(vault_path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = connection.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'tokens'"
    ).fetchone()[0]
    size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    with open(vault_path, "r+b") as file:
        file.seek((root - 1) * size)
        file.write(b"\xff" * size)


@pytest.mark.parametrize("command", ["stats", ["erase", "--namespace", "ns"]])
def test_damage_found_after_open_reported(initialized, command):
    tokenize(initialized, "Dave Example")
    damage_tokens_root_page(initialized[1])
    command = [command] if isinstance(command, str) else command
    result = tokengate(*command, *initialized)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"the vault {initialized[1]} is damaged" in result.stderr
    assert "restore the vault from a backup" in result.stderr


def test_verify_reports_damaged_page(initialized):
    tokenize(initialized, "Erin Example")
    damage_tokens_root_page(initialized[1])
    result = tokengate("verify", *initialized)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "database integrity check failed" in result.stdout
    assert "audit chain: ok" in result.stdout


@pytest.mark.parametrize(
    ("ttl", "reason"),
    [("person=7", "invalid entity type 'person'"), ("PERSON=inf", "finite number")],
)
def test_init_rejects_invalid_ttl(tmp_path, paths, ttl, reason):
    result = tokengate("init", *paths, "--ttl", ttl)
    assert result.returncode == 1
    assert reason in result.stderr
    assert not (tmp_path / "vault.db").exists()


def test_stats_into_closed_pipe(initialized):
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOKENGATE_")}
    process = subprocess.Popen(
        [str(TOKENGATE), "stats", *map(str, initialized)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    # Closed before the program has imported its modules, so its first print fails.
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
