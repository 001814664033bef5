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
    print(f"{'name':<34} {'kind':<7} {'role':<10} {'status':<12} {'licence':<40} source")
    for s in registry.specs():
        print(f"{s.name:<34} {s.kind:<7} {s.role:<10} {status(registry, s):<12} {s.licence.name[:40]:<40} {s.source}")
    print("\nready: runs offline here; download: runs once its weights are fetched from the hub; unavailable: "
          "t2i has no backend for its kind yet")
    return 0


def status(registry, spec) -> str:
    """"unavailable" (no backend for the kind), "ready" (weights here) or "download" (weights on the hub)."""
    if not registry.has_backend(spec.kind):
        return "unavailable"
    return "ready" if registry.is_available(spec) else "download"
