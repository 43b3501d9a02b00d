"""Package marker (``avito_harness.contracts.crm``)."""
