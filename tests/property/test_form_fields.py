"""The token endpoint's form reader is parse_qsl with blanks kept, for any text a client may send: the fast split
it takes on unescaped text never reads a field differently."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from avito_harness.fakes.avito.oauth import form_fields

form_text = st.lists(st.sampled_from(list("az09=&%+;._-~ é\x00") + ["%2B", "%3D", "%26", "%ZZ"]),
                     max_size=30).map("".join)


@settings(max_examples=500)
@given(form_text)
def test_form_fields_read_any_text_as_parse_qsl_does(text: str) -> None:
    assert form_fields(text) == dict(parse_qsl(text, keep_blank_values=True))
