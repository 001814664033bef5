"""`t2i models`: the registered models, whether each can run here, and their licences."""

from __future__ import annotations

import argparse

from t2i.cli.common import FORMATTER


def register(commands: argparse._SubParsersAction) -> None:
    m = commands.add_parser("models", help="list registered models", epilog="example:\n  t2i models",
                            formatter_class=FORMATTER)
    m.set_defaults(handler=models_command)


def models_command(args: argparse.Namespace) -> int:
    from t2i.backends import default_registry

    registry = args.registry or default_registry()
    print(f"{'name':<34} {'kind':<7} {'role':<10} {'offline':<8} {'licence':<40} source")
    for s in registry.specs():
        avail = "yes" if registry.is_available(s) else "no"
        print(f"{s.name:<34} {s.kind:<7} {s.role:<10} {avail:<8} {s.licence.name[:40]:<40} {s.source}")
    return 0
