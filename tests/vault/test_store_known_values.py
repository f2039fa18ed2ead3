"""Vault.known_values: which normalized values already have a token."""

import pytest

from vault import Vault


def audit_count(vault: Vault) -> int:
    return vault.connection().execute("SELECT count(*) FROM audit_log").fetchone()[0]


def test_known_values_subset(vault: Vault) -> None:
    vault.tokenize("Alice Novak", "PERSON", "ns-a")
    vault.tokenize("Lisbon", "LOCATION", "ns-a")
    found = vault.known_values("ns-a", "PERSON", ["alice novak", "bruno petit"])
    assert found == {"alice novak"}


def test_known_values_exact_normalized_form(vault: Vault) -> None:
    vault.tokenize("Alice  Novak", "PERSON", "ns-a")
    assert vault.known_values("ns-a", "PERSON", ["Alice Novak", "alice"]) == set()
    assert vault.known_values("ns-a", "PERSON", ["alice novak"]) == {"alice novak"}


def test_known_values_per_namespace_and_type(vault: Vault) -> None:
    vault.tokenize("Jordan", "PERSON", "ns-a")
    assert vault.known_values("ns-b", "PERSON", ["jordan"]) == set()
    assert vault.known_values("ns-a", "LOCATION", ["jordan"]) == set()
    assert vault.known_values("ns-a", "PERSON", ["jordan"]) == {"jordan"}


def test_known_values_many_chunks(vault: Vault) -> None:
    names = [f"Person {index}" for index in range(1200)]
    vault.tokenize_many([(name, "PERSON") for name in names[::2]], "ns-a")
    requested = [name.lower() for name in names]
    assert vault.known_values("ns-a", "PERSON", requested) == set(requested[::2])


def test_known_values_reads_only(vault: Vault) -> None:
    vault.tokenize("Alice Novak", "PERSON", "ns-a")
    before = audit_count(vault)
    assert vault.known_values("ns-a", "PERSON", []) == set()
    assert vault.known_values("ns-a", "PERSON", ["alice novak"]) == {"alice novak"}
    assert audit_count(vault) == before


def test_known_values_rejects_invalid_namespace(vault: Vault) -> None:
    with pytest.raises(ValueError):
        vault.known_values("", "PERSON", ["alice"])
