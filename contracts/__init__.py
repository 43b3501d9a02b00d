"""Package marker: these contracts ship inside the avito-harness wheel as ``avito_harness.contracts``."""
