"""The pipeline's flags (rendering, presampling, composition) as argparse arguments, from the one table of
`t2i.pipeline_options`, and back from parsed arguments to a request."""

from __future__ import annotations

import argparse

from t2i.cli.common import LLM_OPTION_HELP, option_arg
from t2i.pipeline_options import PipelineOption, apply_options, options_in
from t2i.types import GenerationRequest

# Flags whose value may be left out: --compose means --compose=on, --compose auto means --compose=auto, and
# --no-compose means --compose=off.  argparse would take the prompt after a bare --compose as its value, so
# `expand_optional_values` writes each as FLAG=VALUE before parsing.
OPTIONAL_VALUES = {"--compose": "on"}
NEGATIONS = {"--no-compose": "--compose=off"}


def expand_optional_values(argv: list[str]) -> list[str]:
    """`argv` with every flag of OPTIONAL_VALUES written as FLAG=VALUE (its value when the next word is one of
    its choices, else its default) and every negation as FLAG=off."""
    choices = {o.name: o.choices for o in options_in("render", "presample", "compose")}
    out, k = [], 0
    while k < len(argv):
        arg = argv[k]
        if arg == "--":  # what follows is positional
            return out + argv[k:]
        if arg in NEGATIONS:
            out.append(NEGATIONS[arg])
        elif arg in OPTIONAL_VALUES:
            if k + 1 < len(argv) and argv[k + 1] in choices[arg.removeprefix("--")]:
                out.append(f"{arg}={argv[k + 1]}")
                k += 1
            else:
                out.append(f"{arg}={OPTIONAL_VALUES[arg]}")
        else:
            out.append(arg)
        k += 1
    return out


def add_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, option: PipelineOption,
               name: str | None = None, help: str | None = None) -> None:
    """`option` as a flag (`--NAME`, default its own name), storing under `option.field`."""
    flags = [f"--{name or option.name}", *(f"--{a}" for a in option.aliases)]
    if f"--{option.name}" in OPTIONAL_VALUES and name is None:
        parser.add_argument(*flags, dest=option.field, choices=option.choices, metavar="{" + ",".join(option.choices)
                            + "}", help=f"{option.help} (--{option.name} alone: on; --no-{option.name}: off)")
        return
    if option.type is bool:
        parser.add_argument(*flags, dest=option.field, action="store_true", help=help or option.help)
        return
    parser.add_argument(*flags, dest=option.field, type=option.type, choices=option.choices or None,
                        metavar=option.metavar, help=help or option.help)


def add_pipeline_flags(parser: argparse.ArgumentParser, *groups: str) -> None:
    """The flags of `groups` ("render", "presample", "compose"); with "render", --option KEY=VALUE too, and
    with an LLM stage, --llm-option KEY=VALUE."""
    for option in options_in(*groups):
        add_option(parser, option)
    if "render" in groups:
        parser.add_argument("--option", type=option_arg, action="append", default=[], metavar="KEY=VALUE",
                            help="backend option, repeatable, e.g. batch_size=2 or device=cpu (each is checked "
                                 "against the backend's option schema: an unknown name or a bad value is refused)")
    if "presample" in groups or "compose" in groups:
        parser.add_argument("--llm-option", type=option_arg, action="append", default=[], metavar="KEY=VALUE",
                            help=LLM_OPTION_HELP)


def apply_pipeline_flags(request: GenerationRequest, args: argparse.Namespace, *groups: str) -> GenerationRequest:
    """`request` with the flags of `groups` that were given set on it (and --option merged over its backend
    options)."""
    values = {o.field: getattr(args, o.field) for o in options_in(*groups)}
    return apply_options(request, values, dict(getattr(args, "option", None) or []))
