"""The acceptance run as product code: the step library (:mod:`.steps`) and the scenarios it runs (:mod:`.test_stages`)."""
