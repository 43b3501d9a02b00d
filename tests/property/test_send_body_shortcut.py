"""The fast route's shortcut for a send's body (``fastpath._plain_send_text``) never accepts what the framework's
model refuses, and takes the text the model would take: a body the shortcut cannot vouch for goes to the model."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from avito_harness.fakes.avito.fastpath import _plain_send_text
from avito_harness.fakes.avito.models import SendTextBody

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
texts = (st.text(max_size=8) | st.sampled_from(["", " ", "x" * 999, "x" * 1000, "x" * 1001, "🔋" * 1000, "\u2028"])
         | scalars | st.lists(scalars, max_size=2))
messages = st.fixed_dictionaries({}, optional={"text": texts, "extra": scalars}) | scalars | st.lists(scalars, max_size=2)
# mostly a send's own shape, with each part drawn right or wrong
sends = st.fixed_dictionaries({"type": st.sampled_from(["text"] * 4 + ["TEXT", "image", ""]) | scalars,
                               "message": st.fixed_dictionaries({"text": texts}, optional={"extra": scalars})
                               | messages}, optional={"other": scalars})
bodies: st.SearchStrategy[Any] = sends | st.fixed_dictionaries(
    {}, optional={"type": scalars, "message": messages}) | scalars | st.lists(scalars, max_size=2)


@settings(max_examples=300)
@given(body=bodies)
@example(body={"type": "text", "message": {"text": ""}})
@example(body={"type": "text", "message": ["hi"]})
@example(body={"type": "text", "message": {"text": "x" * 1001}})
@example(body={"type": "text", "message": {"text": "x" * 1000}, "extra": 1})
def test_the_shortcut_takes_only_what_the_model_takes_and_the_same_text(body: Any) -> None:
    try:
        expected: str | None = SendTextBody.model_validate(body).message.text
    except ValidationError:
        expected = None
    taken = _plain_send_text(body)
    if taken is not None:
        assert taken == expected
    # what a client really sends (a JSON object with string fields) the shortcut takes itself
    if expected is not None and isinstance(body["message"], dict) and isinstance(body["message"].get("text"), str):
        assert taken == expected
