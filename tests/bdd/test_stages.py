"""The customer's five-stage rollout plan (features/), plus Avito errors reproduced on demand.

Every .feature file under the features directory (``bdd_features_base_dir``; ``avito-harness run --features DIR``
points it at a user's own) becomes tests with the shared steps of conftest.py.
"""

from pytest_bdd import scenarios

scenarios(".")
