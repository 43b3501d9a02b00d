"""The scenarios ``avito-harness run`` runs: every .feature file of each directory it names.

``AVITO_HARNESS_FEATURES`` lists the directories (``os.pathsep`` between them): the harness's own features
(shipped inside the package) and/or the user's (``--features DIR``). The steps come from
:mod:`avito_harness.bdd.steps`.
"""

import os

from pytest_bdd import scenarios

__all__: list[str] = []

for _directory in filter(None, os.environ.get("AVITO_HARNESS_FEATURES", "").split(os.pathsep)):
    scenarios(_directory, encoding="utf-8-sig")  # as the feature check reads them (a byte-order mark is allowed)
