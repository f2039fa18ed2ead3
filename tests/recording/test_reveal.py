"""Revealer: audited reveal of the tokens in transcript text."""

from __future__ import annotations

from addons.replay import Revealer

from tests.recording.conftest import NAMESPACE


def mangle(token: str) -> str:
    """Change the token's last digit so that its check character no longer holds."""
    last = token[-2]
    return token[:-2] + str((int(last) + 1) % 10) + token[-1]


def test_reveal_replaces_known_token(vault):
    token = vault.tokenize("Alice Novak", "PERSON", NAMESPACE)
    revealer = Revealer(vault, NAMESPACE, "inv-1", "case 41")

    text = revealer.reveal_text(f"Hi {token}, and {token} again")

    assert text == "Hi Alice Novak, and Alice Novak again"
    assert revealer.revealed == 1
    assert revealer.summary() == "revealed 1 tokens, denied 0"


def test_reveal_skips_mangled_token(vault):
    token = vault.tokenize("Alice Novak", "PERSON", NAMESPACE)
    revealer = Revealer(vault, NAMESPACE, "inv-1", "case 41")

    text = revealer.reveal_text(f"Hi {mangle(token)}")

    assert text == f"Hi {mangle(token)}"
    assert revealer.revealed == 0
    assert revealer.invalid == 1


def test_reveal_denies_other_namespace(vault):
    vault.tokenize("Bruno Petit", "PERSON", "ns-other")
    foreign = vault.tokenize("Carla Ruiz", "PERSON", "ns-other")
    revealer = Revealer(vault, NAMESPACE, "inv-1", "case 41")

    text = revealer.reveal_text(f"cc {foreign}")

    assert text == f"cc {foreign}"
    assert revealer.denied == {"namespace": 1}
    assert revealer.summary() == "revealed 0 tokens, denied 1 (namespace=1)"
