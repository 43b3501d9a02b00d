"""The fakes of a load run as several processes, each owning a share of the shops (``--shards N``).

Shard 0 is the stack the run was given (in this process); every other shard is a fake Avito and a fake n8n
started as processes of their own (``avito-harness serve``), with no state in common: a shop's account, its
chats, its webhook subscription and what its gateway forwards live on its shard only. The gateway reaches each
shop's shard through the account's ``avito_api_base_url`` and ``n8n_webhook_url`` (ACCOUNTS_FILE), so the fakes
scale with the cores instead of one interpreter's lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx

from avito_harness.stack.control_clients import AvitoSim, N8nSim
from avito_harness.stack.gateway_process import free_port, stop_process
from avito_harness.waiting import wait_until

__all__ = ["Shard", "shards"]

SERVE = ("-c", "import sys; from avito_harness.cli import main; sys.exit(main(sys.argv[1:]))", "serve")


@dataclass
class Shard:
    avito_url: str
    n8n_url: str
    avito: Any  # the fake Avito's control client (AvitoSim, or the in-process stack's)
    n8n: Any
    pids: list[int] = field(default_factory=list)  # its own processes (none for the run's stack)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sim/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def shards(stack: Any, count: int) -> Iterator[list[Shard]]:
    """``count`` shards: the given stack, and ``count - 1`` pairs of fake processes (stopped on exit)."""
    found = [Shard(stack.urls["avito"], stack.urls["n8n"], stack.avito, stack.n8n)]
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "SIM_CLOCK": "system", "SIM_N8N_MODE": "record"}
    try:
        for _ in range(max(0, count - 1)):
            ports = {service: free_port() for service in ("avito", "n8n")}
            started = {service: subprocess.Popen([sys.executable, *SERVE, service, "--port", str(port)], env=env,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                 start_new_session=True)  # its own group: stop_process ends it
                       for service, port in ports.items()}
            procs += started.values()
            urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
            for service, url in urls.items():
                if not wait_until(partial(_healthy, url), 30):
                    raise RuntimeError(f"a fake {service} shard did not start on {url}")
            found.append(Shard(urls["avito"], urls["n8n"], AvitoSim(urls["avito"]), N8nSim(urls["n8n"]),
                               [p.pid for p in started.values()]))
        yield found
    finally:
        for shard in found[1:]:
            shard.avito.close()
            shard.n8n.close()
        for proc in procs:
            stop_process(proc, grace=5)
