"""The customer's five-stage rollout plan (features/), plus Avito errors, with the packaged step library.

The steps are product code (``avito_harness.bdd.steps``, loaded by tests/conftest.py); this file only runs
the repository's features through them, as ``avito-harness run`` does from an installed wheel.
"""

from pytest_bdd import scenarios

scenarios(".")
