"""The defect catalogue's doubles break what they say: every patch names an attribute that exists."""

from __future__ import annotations

import importlib

import pytest
from avito_doubles.catalogue import DOUBLES, Patch


@pytest.mark.parametrize("name", sorted(n for n, d in DOUBLES.items() if d.patches))
def test_every_patch_of_a_double_names_an_attribute_that_exists(name: str) -> None:
    for patch in DOUBLES[name].patches:
        module, _, attr = patch.target.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), f"{name}: {patch.target} is gone: the double breaks nothing"


def test_a_patch_of_an_attribute_that_is_not_there_is_refused() -> None:
    with pytest.raises(AttributeError, match="avito_gateway.normalize.FORWARDED_KINDS does not exist"):
        Patch.value("avito_gateway.normalize.FORWARDED_KINDS", frozenset()).apply()


def test_each_double_names_a_defect_of_the_catalogue_and_scenarios_to_run() -> None:
    from avito_harness.judge.defects import CATALOGUE

    for name, double in DOUBLES.items():
        assert double.codes and set(double.codes) <= set(CATALOGUE) and double.scenarios, name
        assert double.avito or double.n8n or double.patches or double.wraps or double.settings, f"{name} breaks nothing"
