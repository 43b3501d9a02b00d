"""The gateway's configuration: the deployment's variable names, .env, and a clear refusal to start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from avito_gateway.errors import AVITO_ERROR_TABLE, avito_error
from avito_gateway.settings import ConfigError, GatewaySettings, load_settings

BASE = {"API_KEY": "k", "AVITO_CLIENT_ID": "id", "AVITO_CLIENT_SECRET": "secret"}


def test_reads_the_existing_deployments_variable_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    env = {**BASE, "AVITO_USER_ID": "100000001", "AVITO_API_BASE_URL": "http://127.0.0.1:8080",
           "N8N_WEBHOOK_URL": "http://127.0.0.1:5678/webhook/avito", "SERVER_PORT": "9000", "RATE_LIMIT_REQUESTS": "50",
           "RATE_LIMIT_WINDOW": "30", "MAX_CONNECTIONS": "7", "CONNECTION_TIMEOUT": "12", "MAX_RETRIES": "2",
           "RETRY_MIN_WAIT": "0.5", "RETRY_MAX_WAIT": "3", "IMAGE_URL_ALLOWED_HOSTS": "cdn.example.test, 127.0.0.1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert (s.avito_user_id, s.server_port, s.rate_limit_requests, s.rate_limit_window, s.max_connections) == (
        100000001, 9000, 50, 30, 7)
    assert (s.connection_timeout, s.max_retries, s.retry_min_wait, s.retry_max_wait) == (12, 2, 0.5, 3)
    assert s.image_url_allowed_hosts == ("cdn.example.test", "127.0.0.1")


def test_defaults_are_the_briefs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = GatewaySettings(_env_file=None, api_key="k", avito_client_id="a", avito_client_secret="b")  # type: ignore[call-arg]
    assert (s.server_port, s.rate_limit_requests, s.rate_limit_window, s.max_connections) == (8765, 100, 60, 20)
    assert s.avito_api_base_url == "https://api.avito.ru" and s.server_host == "127.0.0.1"


def test_dot_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in BASE:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("API_KEY=from-dotenv\nAVITO_CLIENT_ID=a\nAVITO_CLIENT_SECRET=b\n")
    assert load_settings().api_key == "from-dotenv"


@pytest.mark.parametrize("missing", sorted(BASE))
def test_refuses_to_start_naming_the_missing_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: str) -> None:
    monkeypatch.chdir(tmp_path)
    for k, v in BASE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigError, match=missing):
        load_settings()


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for k, v in BASE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SERVER_PORT", "eighty")
    with pytest.raises(ConfigError, match="SERVER_PORT"):
        load_settings()


def test_console_script_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("avito-gateway")
    env = {"PATH": "/usr/bin:/bin", "API_KEY": "k", "AVITO_CLIENT_ID": "id"}
    result = subprocess.run([str(exe)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == "avito-gateway: AVITO_CLIENT_SECRET is not set: the gateway needs it to start"


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 413, 429, 500, 502, 503, 504, 418])
def test_every_avito_status_maps_to_a_gateway_error(status: int) -> None:
    error = avito_error(status, {"error": {"code": status, "message": "m"}})
    assert error.body()["error"] == f"Avito API Error {status}: m"
    assert 400 <= error.status < 600 and error.code.startswith("avito_")
    assert error.retryable == (status == 429 or status >= 500)
    assert set(AVITO_ERROR_TABLE) >= {400, 401, 402, 403, 404, 429, "5xx", "timeout", "transport"}
