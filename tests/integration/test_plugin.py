"""The pytest plugin as a user's test suite sees it (pytester runs a suite in a subprocess)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_plugin_fixtures_work_in_a_fresh_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_customer_says(avito, n8n, sim):
            chat = avito.account(100000001)["chats"][0]["id"]
            said = avito.customer_says(100000001, chat, "hello")
            assert said["message"]["content"] == {"text": "hello"}

        def test_state_is_fresh(avito):
            assert len(avito.account(100000001)["chats"]) == 4

        def test_clock_is_virtual(avito, clock):
            before = clock.now()
            avito.advance(3600)
            assert clock.now() == before + 3600
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_fault_that_never_fired_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_forgets_to_trigger(avito):
            avito.add_fault("server_500", route="POST /messenger/*")

        def test_optional_rule_is_fine(avito):
            avito.add_fault("server_500", route="POST /messenger/*", required=False)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*fault rule(s) never fired: avito:server_500*"])
