"""The pipeline's flags (rendering, presampling, composition) as argparse arguments, from the one table of
`t2i.pipeline_options`, and back from parsed arguments to a request."""

from __future__ import annotations

import argparse

from t2i.cli.common import LLM_OPTION_HELP, option_arg
from t2i.pipeline_options import PipelineOption, apply_options, options_in
from t2i.types import GenerationRequest


def add_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, option: PipelineOption,
               name: str | None = None, help: str | None = None) -> None:
    """`option` as a flag (`--NAME`, default its own name), storing under `option.field`."""
    flags = [f"--{name or option.name}", *(f"--{a}" for a in option.aliases)]
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
