"""Package marker: these features ship inside the avito-harness wheel as ``avito_harness.features``."""
