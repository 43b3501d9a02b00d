"""ACCOUNTS_FILE and DATABASE_URL: many shops in one gateway, refused clearly when the file is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from avito_gateway.accounts import load_accounts
from avito_gateway.settings import ConfigError, GatewaySettings

SHOP = {"name": "north", "user_id": 200000002, "client_id": "north-id", "client_secret": "north-secret",
        "api_keys": ["north-key"]}


def settings(tmp_path: Path, accounts: Any, **env: Any) -> GatewaySettings:
    path = tmp_path / "accounts.yaml"
    path.write_text(accounts if isinstance(accounts, str) else yaml.safe_dump(accounts))
    values = {"accounts_file": path, "n8n_webhook_url": "http://127.0.0.1:5678/webhook/avito", **env}
    return GatewaySettings(_env_file=None, **values).check()  # type: ignore[call-arg]


def test_a_file_alone_serves_its_shops_without_the_single_account_variables(tmp_path: Path) -> None:
    (shop,) = load_accounts(settings(tmp_path, {"accounts": [SHOP]}))
    assert (shop.name, shop.user_id, shop.api_keys) == ("north", 200000002, ("north-key",))
    assert shop.n8n_webhook_url == "http://127.0.0.1:5678/webhook/avito"  # N8N_WEBHOOK_URL unless it names its own


def test_the_environments_account_comes_first_and_keeps_its_variables(tmp_path: Path) -> None:
    found = load_accounts(settings(tmp_path, [SHOP], api_key="env-key", avito_client_id="env-id",
                                   avito_client_secret="env-secret", avito_user_id=100000001))
    assert [(a.name, a.user_id, a.client_id) for a in found] == [("default", 100000001, "env-id"),
                                                                ("north", 200000002, "north-id")]


def test_a_secret_may_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {**SHOP, "client_secret": None, "client_secret_env": "NORTH_SECRET"}
    del entry["client_secret"]
    monkeypatch.setenv("NORTH_SECRET", "from-env")
    assert load_accounts(settings(tmp_path, [entry]))[0].client_secret == "from-env"
    monkeypatch.delenv("NORTH_SECRET")
    with pytest.raises(ConfigError, match="client_secret_env names NORTH_SECRET, which is not set"):
        load_accounts(settings(tmp_path, [entry]))


@pytest.mark.parametrize(("accounts", "env", "problem"), [
    ([{**SHOP, "user_id": None}], {"api_key": "k", "avito_client_id": "i", "avito_client_secret": "s",
                                    "avito_user_id": 1}, "'north': user_id is required when the gateway serves several"),
    ([SHOP], {"api_key": "k", "avito_client_id": "i", "avito_client_secret": "s"},
     "AVITO_USER_ID is required when the gateway serves several accounts"),
    ([SHOP, {**SHOP, "name": "south", "user_id": 3, "client_id": "s"}], {}, "an API key is given to two accounts"),
    ([SHOP, {**SHOP, "name": "south", "api_keys": ["south"]}], {}, "user_id 200000002 is given to two accounts"),
    ([SHOP, {**SHOP, "api_keys": ["south"], "user_id": 3}], {}, "account name 'north' is used twice"),
    ([SHOP], {"avito_client_id": "i", "avito_client_secret": "s", "avito_user_id": 1},
     "API_KEY is not set"),
    ([{**SHOP, "client_secrett": "typo"}], {}, "client_secrett: Extra inputs are not permitted"),
    ([{**SHOP, "api_keys": []}], {}, "api_keys is required"),
    ([{**SHOP, "api_keys": [" padded "]}], {}, "surrounding spaces"),
    ([{**SHOP, "webhook_secret": "short"}], {}, "webhook_secret"),
    ("accounts: [unclosed", {}, "is not YAML or JSON"),
    ({"accounts": []}, {}, "must hold a list of accounts"),
    # values that would start but never work (issue 27, item 6)
    ([{**SHOP, "webhook_secret": "shared-secret-1"}, {**SHOP, "name": "south", "user_id": 3, "api_keys": ["s"],
                                                      "webhook_secret": "shared-secret-1"}], {},
     "'south': its webhook_secret is another account's too"),
    ([{**SHOP, "webhook_secret": "shared-secret-1"}], {"api_key": "k", "avito_client_id": "i", "avito_client_secret": "s",
                                                      "avito_user_id": 1, "webhook_secret": "shared-secret-1"},
     "'north': its webhook_secret is another account's too"),
    ([{**SHOP, "tenant": "north\r\nX-Other: 1"}], {}, "'north': tenant must be printable ASCII without line breaks"),
    ([{**SHOP, "tenant": "север"}], {}, "'north': tenant must be printable ASCII"),
    ([{**SHOP, "api_keys": ["ключ-север"]}], {}, "'north': an API key must be printable ASCII"),
    ([{**SHOP, "client_secret_env": "NORTH_SECRET"}], {}, "give client_secret or client_secret_env, not both"),
    ([{**SHOP, "n8n_webhook_url": "127.0.0.1:5678/webhook"}], {}, "'north': n8n_webhook_url must be an absolute http"),
    ([{**SHOP, "n8n_webhook_url": "ftp://127.0.0.1/x"}], {}, "'north': n8n_webhook_url must be an absolute http"),
    ([{**SHOP, "avito_api_base_url": "api.avito.ru"}], {}, "'north': avito_api_base_url must be an absolute http"),
    ([SHOP], {"n8n_webhook_url": "http:///no-host"}, "must be an absolute http"),
    ([SHOP], {"api_key": "ключ", "avito_client_id": "i", "avito_client_secret": "s", "avito_user_id": 1},
     "the environment's account: an API key must be printable ASCII"),
])
def test_a_wrong_accounts_file_is_refused_naming_the_problem(tmp_path: Path, accounts: Any, env: dict[str, Any],
                                                             problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_accounts(settings(tmp_path, accounts, **env))


def test_database_url_must_be_postgres(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL must be a postgresql:// URL"):
        settings(tmp_path, [SHOP], database_url="mysql://127.0.0.1/x")


def test_an_unreachable_database_stops_the_gateway_before_it_listens(tmp_path: Path) -> None:
    from avito_harness.stack.gateway_process import free_port

    exe = Path(sys.executable).with_name("avito-gateway")
    env = {"PATH": "/usr/bin:/bin", "API_KEY": "k", "AVITO_CLIENT_ID": "id", "AVITO_CLIENT_SECRET": "secret",
           "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/gateway", "CONNECTION_TIMEOUT": "2"}
    result = subprocess.run([str(exe)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("avito-gateway: cannot use DATABASE_URL:"), result.stderr
    assert "listening" not in result.stdout
