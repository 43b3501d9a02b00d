"""The judge: what a run selects, prepares, checks and concludes (exit codes, categories, reports)."""
