"""``record``, ``replay`` and ``scenario from-recording``: an Avito incident recorded, played back, kept."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from avito_harness.cli.serving import _stop_on_signals

__all__ = ["run_record", "run_replay", "run_scenario"]


def run_record(args: argparse.Namespace, console: Console) -> int:
    import importlib.util

    from avito_harness.fakes.clock import Clock
    from avito_harness.recording.anonymize import Anonymizer
    from avito_harness.recording.har import HarWriter
    from avito_harness.recording.proxy import RecordingProxy, recording_app
    from avito_harness.stack.serve import ServeError, serve_in_thread

    if args.anonymize and importlib.util.find_spec("faker") is None:
        console.print("error: --anonymize draws its fakes from Faker: pip install 'avito-harness[record]'", markup=False)
        return 2
    anonymizer = Anonymizer(args.seed) if args.anonymize else None
    clock = Clock()
    writer = HarWriter(Path(args.out), began=clock.now(), transform=anonymizer.entry if anonymizer else None)
    proxy = RecordingProxy(writer, upstream=args.upstream, public_url="", webhook_to=args.webhook_to, clock=clock)
    try:
        served = serve_in_thread(recording_app(proxy), name="recorder", port=args.port)
    except ServeError as exc:
        console.print(f"error: {exc}", markup=False)
        return 2
    proxy.public_url = args.public_url or served.url
    console.print(f"recording to {args.out}: point the gateway's AVITO_API_BASE_URL at {served.url} "
                  f"(forwarded to {args.upstream}); webhooks it subscribes come through {proxy.public_url}/_webhook/N"
                  + (" · personal data replaced" if anonymizer else "") + " · Ctrl-C stops", markup=False)
    stop = _stop_on_signals()
    try:
        stop.wait()
    finally:
        served.stop()
    console.print(f"{len(writer.entries)} call(s) recorded in {args.out} (tokens, secrets and keys masked)",
                  markup=False)
    return 0


def _scenario(path: str) -> dict[str, object]:
    from avito_harness.recording.har import read_har
    from avito_harness.recording.replay import to_scenario

    return to_scenario(read_har(Path(path)), source=Path(path).name)


def run_scenario(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.fakes.scenario import dump_scenario

    try:
        text = dump_scenario(_scenario(args.recording))
    except ValueError as exc:
        console.print(f"error: {exc}", markup=False)
        return 2
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        console.print(f"scenario written to {args.out}: load it with `avito-harness sim --scenario {args.out}`",
                      markup=False)
    else:
        print(text, end="")
    return 0


def run_replay(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.fakes.settings import SimSettings
    from avito_harness.recording.replay import deliver, not_in_recording, webhooks_of
    from avito_harness.stack.local import Stack

    try:
        scenario = _scenario(args.recording)
    except ValueError as exc:
        console.print(f"error: {exc}", markup=False)
        return 2
    stop = _stop_on_signals()
    settings = SimSettings.from_env().model_copy(update={"avito_port": args.avito_port, "n8n_port": 0, "stt_port": 0})
    with Stack.start(settings, scenario=scenario) as stack:
        console.print(f"fake Avito replaying {args.recording} at {stack.urls['avito']} "
                      f"({scenario['description']}): point the gateway's AVITO_API_BASE_URL there", markup=False)
        hooks = webhooks_of(scenario)
        if args.webhook_to and hooks:
            stop.wait(args.start_after)
            statuses = deliver(args.webhook_to, hooks, wait=stop.wait)
            console.print(f"{len(statuses)} recorded webhook(s) delivered to {args.webhook_to}: answered {statuses}",
                          markup=False)
        if not args.exit:
            console.print("Ctrl-C stops", markup=False)
            stop.wait()
        missed = not_in_recording(stack.avito.journal())
    console.print(f"not in the recording ({len(missed)}): " + ("; ".join(missed) if missed else "none"), markup=False)
    return 0
