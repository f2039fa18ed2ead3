import sqlite3
import time

import pytest

from vault import RevealDenied, Vault, VaultError
from vault import maintenance


def audit_rows(vault, event):
    return vault.connection().execute(
        "SELECT actor, fields FROM audit_log WHERE event = ? ORDER BY seq", (event,)
    ).fetchall()


def test_tokenize_is_deterministic(vault):
    first = vault.tokenize("Alice Smith", "PERSON", "team-a")
    second = vault.tokenize("Alice Smith", "PERSON", "team-a")
    assert first == "[PERSON_13]"
    assert second == first


def test_tokenize_normalizes_per_type(vault):
    assert vault.tokenize("alice@example.com", "EMAIL_ADDRESS", "ns") == vault.tokenize(
        "Alice@Example.com", "EMAIL_ADDRESS", "ns"
    )
    assert vault.tokenize("4111 1111 1111 1111", "CREDIT_CARD", "ns") == vault.tokenize(
        "4111-1111-1111-1111", "CREDIT_CARD", "ns"
    )
    assert vault.tokenize("ALICE  Smith", "PERSON", "ns") == vault.tokenize(
        "alice smith", "PERSON", "ns"
    )


def test_reveal_returns_first_submitted_spelling(vault):
    token = vault.tokenize("Alice@Example.com", "EMAIL_ADDRESS", "ns")
    vault.tokenize("alice@example.com", "EMAIL_ADDRESS", "ns")
    assert vault.reveal(token, "ns", "ann", "case 1") == "Alice@Example.com"


def test_serials_count_per_namespace_and_type(vault):
    assert vault.tokenize("a", "PERSON", "ns") == "[PERSON_13]"
    assert vault.tokenize("b", "PERSON", "ns") == "[PERSON_21]"
    assert vault.tokenize("a", "LOCATION", "ns") == "[LOCATION_13]"
    assert vault.tokenize("b", "PERSON", "other") == "[PERSON_13]"


def test_namespaces_give_unrelated_tokens(vault):
    vault.tokenize("first", "PERSON", "ns-a")
    in_a = vault.tokenize("Alice", "PERSON", "ns-a")
    in_b = vault.tokenize("Alice", "PERSON", "ns-b")
    assert in_a != in_b
    assert vault.reveal(in_b, "ns-b", "ann", "check") == "Alice"
    with pytest.raises(RevealDenied) as denied:
        vault.reveal(in_a, "ns-b", "ann", "check")
    assert denied.value.reason == "namespace"


def test_tokenize_many_keeps_order_and_dedupes(vault):
    tokens = vault.tokenize_many(
        [("a@x.io", "EMAIL_ADDRESS"), ("Bob", "PERSON"), ("A@X.io", "EMAIL_ADDRESS")],
        "ns",
    )
    assert tokens == ["[EMAIL_ADDRESS_13]", "[PERSON_13]", "[EMAIL_ADDRESS_13]"]
    assert vault.tokenize_many([], "ns") == []


@pytest.mark.parametrize(
    "items, namespace, origin",
    [
        ([("", "PERSON")], "ns", "client"),
        ([("x", "person")], "ns", "client"),
        ([("x", "PERSON")], "", "client"),
        ([("x", "PERSON")], "ns", "robot"),
    ],
)
def test_tokenize_many_rejects_invalid_input(vault, items, namespace, origin):
    with pytest.raises(ValueError):
        vault.tokenize_many(items, namespace, origin)


def test_model_origin_upgrades_to_client_only(vault):
    token = vault.tokenize("Carol", "PERSON", "ns", origin="model")
    assert vault.token_info(token, "ns").origin == "model"
    vault.tokenize("Carol", "PERSON", "ns", origin="client")
    assert vault.token_info(token, "ns").origin == "client"
    vault.tokenize("Carol", "PERSON", "ns", origin="model")
    assert vault.token_info(token, "ns").origin == "client"


def test_token_info_fields(vault):
    before = time.time()
    token = vault.tokenize("Dan", "PERSON", "ns")
    info = vault.token_info(token, "ns")
    assert info.token == token
    assert info.namespace == "ns"
    assert info.entity_type == "PERSON"
    assert info.origin == "client"
    assert before <= info.created_at <= time.time()
    assert info.expires_at == pytest.approx(info.created_at + 30 * 86400)
    assert vault.token_info(token, "elsewhere") is None
    assert vault.token_info("[PERSON_14]", "ns") is None


def test_reveal_unknown_token_denied(vault):
    with pytest.raises(RevealDenied) as denied:
        vault.reveal("[PERSON_13]", "ns", "ann", "check")
    assert denied.value.reason == "unknown"
    with pytest.raises(RevealDenied) as denied:
        vault.reveal("not a token", "ns", "ann", "check")
    assert denied.value.reason == "unknown"


def test_reveal_audits_grant_and_denial_without_value(vault):
    token = vault.tokenize("Eve Secret", "PERSON", "ns")
    vault.reveal(token, "ns", "ann", "ticket 7")
    with pytest.raises(RevealDenied):
        vault.reveal(token, "other", "bob", "curious")
    rows = audit_rows(vault, "reveal")
    assert len(rows) == 2
    assert rows[0][0] == "ann"
    assert '"outcome":"granted"' in rows[0][1]
    assert '"purpose":"ticket 7"' in rows[0][1]
    assert f'"token":"{token}"' in rows[0][1]
    assert rows[1][0] == "bob"
    assert '"outcome":"denied"' in rows[1][1]
    assert '"reason":"namespace"' in rows[1][1]
    assert all("Eve" not in fields for _, fields in rows)


def test_reveal_many_filters_and_audits_once(vault):
    client = vault.tokenize("Frank", "PERSON", "ns")
    model = vault.tokenize("Grace", "PERSON", "ns", origin="model")
    foreign = vault.tokenize("Heidi", "LOCATION", "other")
    values = vault.reveal_many(
        [client, model, foreign, "[PERSON_14]", client], "ns", "gateway", "restore"
    )
    assert values == {client: "Frank"}
    both = vault.reveal_many([client, model], "ns", "gateway", "restore", ("client", "model"))
    assert both == {client: "Frank", model: "Grace"}
    rows = audit_rows(vault, "reveal_many")
    assert len(rows) == 2
    assert '"requested":4' in rows[0][1]
    assert '"granted":1' in rows[0][1]
    assert f'"denied_origin":["{model}"]' in rows[0][1]
    assert "Frank" not in rows[0][1]


def test_ciphertext_moved_to_other_row_fails(vault):
    first = vault.tokenize("Ivan", "PERSON", "ns")
    second = vault.tokenize("Judy", "PERSON", "ns")
    connection = vault.connection()
    nonce, ciphertext = connection.execute(
        "SELECT nonce, ciphertext FROM tokens WHERE serial = 1 AND namespace = 'ns'"
    ).fetchone()
    connection.execute(
        "UPDATE tokens SET nonce = ?, ciphertext = ? WHERE serial = 2 AND namespace = 'ns'",
        (nonce, ciphertext),
    )
    assert vault.reveal(first, "ns", "ann", "check") == "Ivan"
    with pytest.raises(VaultError, match="failed authentication"):
        vault.reveal(second, "ns", "ann", "check")
    assert vault.reveal_many([first, second], "ns", "gateway", "restore") == {first: "Ivan"}
    assert '"outcome":"failed"' in audit_rows(vault, "reveal")[-1][1]


def test_ciphertext_moved_to_other_namespace_fails(vault):
    vault.tokenize("Ken", "PERSON", "ns-a")
    token = vault.tokenize("Leo", "PERSON", "ns-b")
    connection = vault.connection()
    nonce, ciphertext = connection.execute(
        "SELECT nonce, ciphertext FROM tokens WHERE namespace = 'ns-a'"
    ).fetchone()
    connection.execute(
        "UPDATE tokens SET nonce = ?, ciphertext = ? WHERE namespace = 'ns-b'",
        (nonce, ciphertext),
    )
    with pytest.raises(VaultError, match="failed authentication"):
        vault.reveal(token, "ns-b", "ann", "check")


def test_each_write_uses_fresh_nonce(vault):
    vault.tokenize_many([("same", "PERSON"), ("same", "LOCATION")], "ns")
    nonces = [row[0] for row in vault.connection().execute("SELECT nonce FROM tokens")]
    assert len(nonces) == 2
    assert len(nonces[0]) == 12
    assert nonces[0] != nonces[1]


def test_expired_token_cannot_be_revealed(vault_paths):
    path, key_file = vault_paths
    with Vault.open(path, key_file, create=True, token_ttl={"PERSON": 0.05}) as vault:
        token = vault.tokenize("Mallory", "PERSON", "ns")
        other = vault.tokenize("Paris", "LOCATION", "ns")
        assert vault.token_info(other, "ns").expires_at is not None
        time.sleep(0.1)
        with pytest.raises(RevealDenied) as denied:
            vault.reveal(token, "ns", "ann", "check")
        assert denied.value.reason == "expired"
        assert vault.reveal_many([token, other], "ns", "gw", "restore") == {other: "Paris"}
        assert maintenance.purge_expired(vault, "admin") == 1
        assert vault.token_info(token, "ns") is None
        assert vault.token_info(other, "ns") is not None


def test_retokenized_expired_value_keeps_token(vault_paths):
    path, key_file = vault_paths
    with Vault.open(path, key_file, create=True, token_ttl={"PERSON": 0.05}) as vault:
        token = vault.tokenize("Niaj", "PERSON", "ns")
        time.sleep(0.1)
        assert vault.tokenize("Niaj", "PERSON", "ns") == token
        assert vault.reveal(token, "ns", "ann", "check") == "Niaj"


def test_ttl_none_means_no_expiry(vault_paths):
    path, key_file = vault_paths
    with Vault.open(path, key_file, create=True, token_ttl={"*": None}) as vault:
        token = vault.tokenize("Olivia", "PERSON", "ns")
        assert vault.token_info(token, "ns").expires_at is None


def test_stored_ttl_applies_on_reopen(vault, vault_paths):
    maintenance.store_token_ttl(vault, {"PERSON": 3600.0}, "admin")
    with Vault.open(*vault_paths) as reopened:
        token = reopened.tokenize("Peggy", "PERSON", "ns")
        info = reopened.token_info(token, "ns")
        assert info.expires_at - info.created_at == pytest.approx(3600.0)


def test_erase_namespace_keeps_serials(vault):
    token = vault.tokenize("Quinn", "PERSON", "gone")
    kept = vault.tokenize("Quinn", "PERSON", "kept")
    assert maintenance.erase_namespace(vault, "gone", "admin") == 1
    assert vault.token_info(token, "gone") is None
    assert vault.token_info(kept, "kept") is not None
    assert vault.tokenize("Rupert", "PERSON", "gone") == "[PERSON_21]"
    assert '"deleted":1' in audit_rows(vault, "erase")[0][1]


def test_audit_method_appends_fields(vault):
    vault.audit("auth_denied", "gateway", principal="ci-bot", reason="expired")
    rows = audit_rows(vault, "auth_denied")
    assert rows == [("gateway", '{"principal":"ci-bot","reason":"expired"}')]


def test_connection_is_per_thread(vault):
    import threading

    seen = []
    worker = threading.Thread(target=lambda: seen.append(vault.connection()))
    worker.start()
    worker.join()
    assert seen[0] is not vault.connection()
    assert vault.connection() is vault.connection()
    assert isinstance(seen[0], sqlite3.Connection)


def test_nested_write_transaction_raises(vault):
    with pytest.raises(RuntimeError, match="nested vault write transaction"):
        with vault.write_transaction():
            vault.tokenize("Sybil", "PERSON", "ns")
    assert vault.tokenize("Sybil", "PERSON", "ns") == "[PERSON_13]"


def test_erase_rejects_empty_namespace(vault):
    vault.tokenize("Sybil", "PERSON", "kept")
    with pytest.raises(ValueError, match="invalid namespace"):
        maintenance.erase_namespace(vault, "", "admin")
    assert audit_rows(vault, "erase") == []
