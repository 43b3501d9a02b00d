"""A gateway that keeps its state in Redis gets a real one (Debian's redis-server) with ``run --redis``; without
it, the run says which part is missing instead of blaming the gateway."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from avito_harness.real.redis import RedisServer

EXE = str(Path(sys.executable).with_name("avito-harness"))
GATEWAY = f"{sys.executable} {Path(__file__).resolve().parents[1] / 'doubles' / 'hostile_gateway.py'} needs_redis"


@pytest.fixture(autouse=True)
def redis_installed() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and no redis-server: .ci/run installs Debian's redis-server")
        pytest.skip("no redis-server here: apt-get install redis-server (.ci/run does)")


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "run", "--gateway-cmd", f"{GATEWAY} --port {{port}}", "--scenario",
                           "Monitoring endpoints", *args], capture_output=True, text=True, timeout=240, cwd=tmp_path)


def test_a_gateway_that_needs_redis_gets_a_real_one(tmp_path: Path) -> None:
    done = _run(tmp_path, "--redis")
    assert done.returncode == 0, done.stdout[-3000:]


def test_without_redis_the_run_names_the_missing_part(tmp_path: Path) -> None:
    done = _run(tmp_path)
    assert done.returncode == 2, done.stdout[-3000:]
    assert "[setup_error]" in done.stdout and "run with --redis" in done.stdout


def test_redis_starts_on_loopback_and_is_gone_after() -> None:
    server = RedisServer().start()
    try:
        assert server.url.startswith("redis://127.0.0.1:") and server._answers()
        folder = server.folder
    finally:
        server.stop()
    assert folder is not None and not folder.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
