"""Package marker (``avito_harness.contracts.avito``)."""
