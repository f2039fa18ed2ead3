"""The `tokengate` administration command line.

Each group of subcommands lives in its own module with a `register(subparsers)` function
that adds its parsers and sets `handler` on each; this module only assembles them.
"""

import argparse
import importlib
import logging
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
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
