"""``python -m avito_doubles list`` prints the catalogue as JSON; ``python -m avito_doubles serve NAME --port N`` serves
one double on 127.0.0.1 with the gateway's usual environment (what ``run --gateway-double`` starts)."""

from __future__ import annotations

import argparse
import json
import sys

import uvicorn

from avito_doubles.catalogue import DOUBLES, VARIANTS, build

__all__ = ["main"]


def catalogue() -> list[dict[str, object]]:
    """What the harness lists: each double's name, the defect codes it must be named with ([] for a variant),
    what it breaks, the scenarios that catch it, how it runs, and what its run needs besides."""
    return [{"name": name, "codes": list(d.codes), "what": d.what, "scenarios": list(d.scenarios),
             "embedded": d.embedded, "contract": d.contract, "args": list(d.args), "variant": name in VARIANTS}
            for name, d in {**DOUBLES, **VARIANTS}.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avito_doubles")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the catalogue as JSON")
    serve = commands.add_parser("serve", help="serve one double on 127.0.0.1")
    serve.add_argument("name", choices=sorted({**DOUBLES, **VARIANTS}))
    serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "list":
        json.dump(catalogue(), sys.stdout, ensure_ascii=False)
        return 0
    uvicorn.run(build(args.name, args.port), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
