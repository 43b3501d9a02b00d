"""The gateway a ``contract`` check reads: a running one (``--gateway-url``), or one started by command against the
fakes (``--gateway-cmd``, as ``run`` starts it), whose sends go to the fake Avito's chats, so they are allowed."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from avito_harness.judge.verdict import CannotJudge, Category

__all__ = ["ContractTarget", "contract_target"]


@dataclass(frozen=True)
class ContractTarget:
    url: str
    api_key: str
    allow_writes: bool
    chat_ids: tuple[str, ...]


@contextmanager
def contract_target(args: argparse.Namespace) -> Iterator[ContractTarget]:
    """Raises :class:`CannotJudge` for options that cannot work or a gateway that does not start."""
    if bool(args.gateway_url) == bool(args.gateway_cmd):
        raise CannotJudge(Category.USAGE, "give --gateway-url (a running gateway) or --gateway-cmd (the harness starts "
                                          "it against the fakes), one of them")
    if args.gateway_url:
        if not args.api_key:
            raise CannotJudge(Category.USAGE, "--gateway-url needs --api-key: the gateway's X-API-Key")
        if args.allow_writes and not args.chat_id:
            raise CannotJudge(Category.USAGE, "--allow-writes needs at least one --chat-id: a deployed gateway talks "
                                              "to real customers")
        yield ContractTarget(args.gateway_url.rstrip("/"), args.api_key, args.allow_writes, tuple(args.chat_id))
        return
    from avito_harness.fakes.settings import DEMO_API_KEY, SimSettings
    from avito_harness.stack.gateway_process import GatewayProcess, GatewayProcessError
    from avito_harness.stack.local import Stack

    try:
        words = shlex.split(args.gateway_cmd)
    except ValueError as exc:
        raise CannotJudge(Category.USAGE, f"--gateway-cmd {args.gateway_cmd!r}: {exc}") from None
    api_key = args.api_key or DEMO_API_KEY
    with Stack.start(SimSettings(avito_port=0, n8n_port=0, stt_port=0)) as stack:
        process = GatewayProcess.wired_to(stack, api_key=api_key, command=words, require_healthy=False)
        try:
            try:
                process.start()
            except GatewayProcessError as exc:
                raise CannotJudge(Category.SETUP, f"--gateway-cmd: {exc}") from None
            chats = tuple(args.chat_id) or tuple(
                c["id"] for c in stack.avito.account(stack.settings.avito_user_id)["chats"][:2])
            yield ContractTarget(process.url, api_key, True, chats)
        finally:
            process.stop()
