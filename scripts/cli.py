"""The `tokengate` administration command line.

Each group of subcommands lives in its own module with a `register(subparsers)` function
that adds its parsers and sets `handler` on each. This module only assembles them.
"""

import argparse
import importlib
import logging
import os
import sys

COMMAND_MODULES = [
    "scripts.vault_commands",
    "scripts.replay_commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokengate",
        description="Administer a tokengate vault, its keys, audit log and recordings.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout exited, as `head` does. Python flushes stdout again at
        # exit, so stdout is pointed at /dev/null to keep that flush from failing too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
