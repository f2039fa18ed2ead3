"""Detector behaviour beyond the field cases: rules, allow list, secrets, network."""

import socket
import threading

import pytest

from addons.detection import DetectionSettings, Detector


def found(detector: Detector, text: str) -> list[tuple[str, str]]:
    return [
        (span.entity_type, text[span.start : span.end])
        for span in detector.detect(text)
    ]


def test_allow_list_keeps_acronyms(detector):
    text = "The API returns JSON; check CPU and SSN fields over HTTP."
    assert found(detector, text) == []


def test_customer_id_rule(detector):
    assert found(detector, "Ticket for customer CUST-123456 is open") == [
        ("CUSTOMER_ID", "CUST-123456")
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "key: sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
            "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        ),
        (
            "token ghp_0123456789abcdefghijABCDEFGHIJ012345 leaked",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        ),
        (
            "SLACK=xoxb-1234567890-0987654321-AbCdEfGhIjKl",
            "xoxb-1234567890-0987654321-AbCdEfGhIjKl",
        ),
        ("id AKIAIOSFODNN7EXAMPLE in the log", "AKIAIOSFODNN7EXAMPLE"),
        (
            "maps key AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q here",
            "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        ),
        ("postgres://app:Tr0ub4dor3@db.internal:5432/main", "Tr0ub4dor3"),
        ("DB_PASSWORD=correct-horse-battery", "correct-horse-battery"),
        ('{"client_secret": "9f8e7d6c5b4a3210"}', "9f8e7d6c5b4a3210"),
        ("Server=db;User Id=sa;Password=Qw3rty!234;", "Qw3rty!234"),
    ],
)
def test_secret_rules_find_value(detector, text, value):
    assert found(detector, text) == [("SECRET", value)]


def test_jwt_detected(detector):
    token = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    )
    assert found(detector, f"Authorization header {token} expired") == [
        ("SECRET", token)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "set PASSWORD=<your password> in .env.example",
        "set PASSWORD=${DB_PASSWORD} in .env.example",
        "set PASSWORD=password in .env.example",
        "set PASSWORD=xxxxxxxx in .env.example",
    ],
)
def test_secret_placeholder_ignored(detector, text):
    assert found(detector, text) == []


def test_default_password_is_secret(detector):
    assert found(detector, "set PASSWORD=changeme in .env") == [("SECRET", "changeme")]


def test_private_key_block_detected(detector):
    key = (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "MIIEowIBAAKCAQEA7\nabc\n"
        "-----END RSA PRIVATE KEY-----"
    )
    assert found(detector, f"config:\n{key}\n") == [("SECRET", key)]


def test_settings_entities_restrict_types(tmp_path):
    detector = Detector(DetectionSettings(entities=frozenset({"EMAIL_ADDRESS"})))
    text = "Alice Novak, alice@example.test, 4111 1111 1111 1111"
    assert found(detector, text) == [("EMAIL_ADDRESS", "alice@example.test")]


def test_detect_empty_text(detector):
    assert detector.detect("") == []


def test_detect_from_threads_gives_same_spans(detector):
    text = (
        "Alice Novak wrote to bruno.petit@example.test about card 4111 1111 1111 1111"
    )
    expected = detector.detect(text)
    results: list = []

    def run() -> None:
        for _ in range(5):
            results.append(detector.detect(text))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert all(result == expected for result in results)


def test_detect_makes_no_network_connection(monkeypatch):
    attempts: list[str] = []

    def refuse_connect(self, address, *args):
        attempts.append(f"connect {address!r}")
        raise OSError("network blocked in test")

    def refuse_lookup(host, *args, **kwargs):
        attempts.append(f"getaddrinfo {host!r}")
        raise OSError("network blocked in test")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket, "create_connection", refuse_lookup)

    detector = Detector()
    text = "reach me at p.ng@example.test"
    spans = detector.detect(text)
    assert attempts == []
    assert [(s.start, s.end, s.entity_type) for s in spans] == [
        (12, 29, "EMAIL_ADDRESS")
    ]


def test_email_in_public_domain_validated_offline(detector):
    assert found(detector, "write to jane.doe@mail.co.uk") == [
        ("EMAIL_ADDRESS", "jane.doe@mail.co.uk")
    ]
