"""Leak detection and masking: any 8+ character piece of a secret is found, and a masked text keeps none."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from avito_harness.judge.leaks import MIN_PIECE, leaked_piece, mask

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"
secrets = st.text(ALPHABET, min_size=MIN_PIECE, max_size=60)
noise = st.text(" {}\":,-ЖЖ", max_size=40)  # nothing from the secrets' alphabet: no accidental piece


@given(secret=secrets, before=noise, after=noise, data=st.data())
def test_any_piece_of_eight_or_more_characters_is_found(secret: str, before: str, after: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(secret) - MIN_PIECE))
    end = data.draw(st.integers(start + MIN_PIECE, len(secret)))
    piece = secret[start:end]
    found = leaked_piece(before + piece + after, [secret])
    assert found is not None and piece in found and found in secret


@given(secret=secrets, text=noise)
def test_text_without_a_piece_is_clean(secret: str, text: str) -> None:
    assert leaked_piece(text + secret[: MIN_PIECE - 1], [secret]) is None


@given(secret=secrets, parts=st.lists(st.tuples(noise, st.booleans()), max_size=5))
def test_a_masked_text_holds_no_piece_of_a_secret(secret: str, parts: list[tuple[str, bool]]) -> None:
    text = "".join(chunk + (secret if with_secret else "") for chunk, with_secret in parts)
    masked = mask(text, [secret])
    assert leaked_piece(masked, [secret]) is None
    assert masked.count("***") == sum(1 for _, with_secret in parts if with_secret)


def test_a_token_prefix_in_an_answer_is_found_and_masked() -> None:
    token = "sim_at_" + "k3j4h5g6f7d8s9a0" * 2
    answer = f'{{"success": true, "token_preview": "{token[:20]}"}}'
    assert leaked_piece(answer, [token]) == token[:20]
    assert mask(answer, [token]) == '{"success": true, "token_preview": "***"}'
