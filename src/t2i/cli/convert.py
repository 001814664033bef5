"""`t2i convert`: a pickled state dict or a diffusers SDXL folder to .safetensors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from t2i.cli.common import FORMATTER


def register(commands: argparse._SubParsersAction) -> None:
    cv = commands.add_parser("convert", help="a pickled state dict (.pt/.pth/.bin/.ckpt), or a diffusers SDXL "
                                             "folder (as one original-layout file), to .safetensors",
                             epilog="examples:\n  t2i convert paella_v3.pt paella_v3.safetensors\n"
                                    "  t2i convert my-sdxl-folder my-sdxl.safetensors", formatter_class=FORMATTER)
    cv.add_argument("src", type=Path, help="a pickle (read with weights_only=True: code in the file is never run) "
                                           "or a diffusers SDXL folder")
    cv.add_argument("dst", type=Path)
    cv.set_defaults(handler=convert_command)


def convert_command(args: argparse.Namespace) -> int:
    from t2i.paella.checkpoints import convert_to_safetensors

    if args.dst.suffix != ".safetensors":
        raise ValueError(f"{args.dst}: the output must be a .safetensors file")
    if args.dst.exists():
        raise ValueError(f"{args.dst} exists; not overwriting it")
    if args.src.is_dir():  # a diffusers SDXL folder -> one original-layout file (A1111, ComfyUI, from_single_file)
        from diffusers import StableDiffusionXLPipeline

        from t2i.backends.sdxl_single_file import save_sdxl_single_file

        index = args.src / "model_index.json"
        kind = json.loads(index.read_text(encoding="utf-8")).get("_class_name") if index.exists() else None
        if kind != "StableDiffusionXLPipeline":
            raise ValueError(f"{args.src}: not a diffusers SDXL folder (model_index.json names {kind!r})")
        n = save_sdxl_single_file(StableDiffusionXLPipeline.from_pretrained(args.src), args.dst)
        print(f"{args.dst}: {n} tensors")
        return 0
    n = convert_to_safetensors(args.src, args.dst)
    print(f"{args.dst}: {n} tensors")
    return 0
