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


def _bdd_suite(pytester: pytest.Pytester, steps: str) -> None:
    pytester.makeconftest('pytest_plugins = ["avito_harness.bdd.steps"]\n')
    pytester.makefile(".feature", mine="Feature: mine\n  Scenario: one\n" + steps)
    pytester.makepyfile(test_mine='from pytest_bdd import scenarios\n\nscenarios("mine.feature")\n')


def test_an_unknown_step_in_a_users_suite_ends_it_as_not_judged(pytester: pytest.Pytester) -> None:
    """Exit 2 before anything runs, naming file:line and the nearest phrase, as a collection error would."""
    _bdd_suite(pytester, "    Given the harness is running\n    When the customer shouts \"hi\"\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    out = result.stdout.str()
    assert result.ret == 2, out
    assert 'could not judge [feature_error]: ' in out and 'mine.feature:4: unknown step "When the customer shouts "hi"": ' \
        'no step of the library matches; did you mean "When the customer writes "{text}""?' in out


def test_a_gateway_command_that_cannot_start_ends_a_users_suite_as_not_judged(pytester: pytest.Pytester) -> None:
    _bdd_suite(pytester, "    Given the harness is running\n    Then /health says healthy\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gateway-cmd", "no-such-gateway {port}")
    out = result.stdout.str()
    assert result.ret == 2, out
    assert ("could not judge [setup_error]: --gateway-cmd: the gateway command's program 'no-such-gateway' was not "
            "found on PATH") in out
    assert "passed" not in out.splitlines()[-1]
