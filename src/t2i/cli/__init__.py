"""The `t2i` command line.  Errors are one line on stderr (`--debug` shows the traceback)."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from t2i.llm.base import LLMError

if TYPE_CHECKING:
    from t2i.registry import ModelRegistry

EXAMPLES = {
    "t2i": """examples:
  t2i generate "a red circle above a blue square"
  t2i models
  t2i info outputs/2026-11-23/00000-42.png
  t2i world sample --n 16 --seed 0 --out samples""",
    "generate": """examples:
  t2i generate "a red circle above a blue square" --seed 42
  t2i generate "two yellow stars" --n 4 --out stars/
  t2i generate "red circle" --presample          # a TIPO model expands the prompt first
  t2i generate --from outputs/2026-11-23/00000-42.png   # reproduce an image from its metadata""",
    "compose": """examples:
  t2i compose "a red circle above a blue square"
  t2i compose "a red circle above a blue square" --edit "now make the square green"
  t2i compose "a cat on a sofa" --model http://127.0.0.1:8080/v1""",
    "presample": """examples:
  t2i presample "red circle"
  t2i presample "a red circle above a blue square" --seed 3 --json
  t2i presample "1girl, (long hair:1.2)" --model tipo-500m-ft --llm-option backend=llama.cpp
  t2i presample "red circle" --model http://127.0.0.1:8080/v1""",
    "info": """example:
  t2i info outputs/2026-11-23/00000-42.png""",
    "models": """example:
  t2i models""",
    "world": """examples:
  t2i world sample --n 16 --seed 0 --out samples
  t2i world suite --out suite.jsonl
  t2i world render-suite --suite suite.jsonl --out gt
  t2i world score gt --suite suite.jsonl
  t2i world boxes gt --out boxes.png
  t2i world detector-check --n 1000""",
}


LLM_OPTION_HELP = ("language-model option, repeatable: backend=llama.cpp, device=cpu, n_ctx=2048; for a server URL "
                   "timeout=S (each read, default 10), start_deadline=S (until the first token, default 30), "
                   "deadline=S (the whole answer, default 600), retries=N (0-10, default 2)")


def _size(text: str) -> tuple[int, int]:
    try:
        w, _, h = text.lower().partition("x")
        return int(w), int(h or w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 64 or 64x64, got {text!r}") from None


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers like 1,2,2, got {text!r}") from None


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"options look like KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    if isinstance(parsed, list | dict):
        parsed = value
    return key, parsed


def _weights(pairs: list[tuple[str, object]], flag: str = "--oversample") -> dict[str, float] | None:
    """`flag` SHAPE=W pairs as a dict (None when none were given); W must be a number."""
    if not pairs:
        return None
    out = {}
    for key, value in pairs:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{flag} {key}={value}: the weight must be a number")
        out[key] = float(value)
    return out


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="t2i", description="Text to image: presample, compose, generate, evaluate.",
                                epilog=EXAMPLES["t2i"], formatter_class=fmt)
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="generate images from a prompt", epilog=EXAMPLES["generate"],
                       formatter_class=fmt)
    g.add_argument("prompt", nargs="?", help="what to draw; prompts joined by AND (\"a red circle AND a blue "
                   "square :0.5\") are composed by summing their guidance (composable diffusion; weight after a "
                   "colon, default 1)")
    g.add_argument("--from", dest="from_image", type=Path, metavar="IMAGE",
                   help="replay the request stored in a t2i image (bit for bit on the same machine)")
    g.add_argument("--model", "-m", help="registered name, hub id or local folder/file (default shapes-xl)")
    g.add_argument("--negative", help="negative prompt (default: the model's)")
    g.add_argument("--seed", type=int, help="seed of the first image; image k uses seed+k (default: random)")
    g.add_argument("--steps", type=int)
    g.add_argument("--guidance", "--cfg", type=float, help="classifier-free guidance scale")
    g.add_argument("--size", type=_size, help="WxH (default: the model's)")
    g.add_argument("--sampler")
    g.add_argument("--n", type=int, help="number of images (default 1)")
    g.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable, e.g. batch_size=2 or device=cpu (each is checked against the "
                        "backend's option schema: an unknown name or a bad value is refused)")
    g.add_argument("--presample", action="store_true", help="expand the prompt with a TIPO model first")
    _presample_flags(g)
    g.add_argument("--compose", action="store_true",
                   help="an LLM writes an Omost Canvas program; the regional renderer follows it")
    g.add_argument("--compose-model", help="composer: registered name, folder, .gguf or http(s) URL "
                                           "(default omost-tiny)")
    g.add_argument("--program", type=Path, metavar="FILE",
                   help="render this Canvas program (parsed, never executed) instead of asking an LLM")
    g.add_argument("--region-mode", choices=["omost", "couple", "off"],
                   help="regional attention: omost (score manipulation, default), couple (masks only), off")
    g.add_argument("--region-text", choices=["omost", "own", "local", "local-pooled", "local-outside"],
                   help="what each region reads: omost (global description first, default), own (only its own "
                        "description), local (own, and the global region only its colour and 'background'), "
                        "local-pooled (local, with the global description's pooled vector), local-outside (local, "
                        "and the global region attended only outside the local boxes)")
    g.add_argument("--color-start", type=float, metavar="STRENGTH",
                   help="with a canvas: start from its coarse colour image at this strength (0-1, e.g. 0.9)")
    g.add_argument("--hires", type=float, metavar="SCALE",
                   help="hi-res fix: upscale by SCALE (e.g. 1.5), then denoise again at --hires-strength")
    g.add_argument("--hires-strength", type=float, metavar="S", help="hi-res fix denoising strength (default 0.5)")
    g.add_argument("--excite", metavar="WORDS",
                   help="Attend-and-Excite (SDXL family): words of the prompt that must appear, comma-separated, "
                        "auto (the shapes-world nouns) or user (those of your prompt, not of its --presample "
                        "expansion); against objects left out of multi-object prompts")
    g.add_argument("--out", help="output file (.png) or folder (default outputs/YYYY-MM-DD/; a name ending in / is "
                                 "a folder)")
    g.add_argument("--max-pixels", type=int, metavar="N",
                   help="pixels one call may draw, width x height x n (hi-res fix counted at its size); default: "
                        "the model's (1,048,576 for the shipped models, 4,194,304 for SDXL/KOALA)")
    g.add_argument("--outputs-root", type=Path, default=Path("outputs"), help=argparse.SUPPRESS)

    co = sub.add_parser("compose", help="an LLM writes an Omost Canvas program; print it, save a preview",
                        epilog=EXAMPLES["compose"], formatter_class=fmt)
    co.add_argument("prompt")
    co.add_argument("--model", dest="compose_model", help="composer (default omost-tiny)")
    co.add_argument("--seed", type=int, default=12345)
    co.add_argument("--edit", action="append", default=[], metavar="INSTRUCTION",
                    help="then edit the canvas with this instruction (repeatable: one round each)")
    co.add_argument("--preview", type=Path, help="preview PNG (default outputs/YYYY-MM-DD/canvas-NNNNN.png)")
    co.add_argument("--llm-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                    help=LLM_OPTION_HELP)

    ps = sub.add_parser("presample", help="expand a prompt with a TIPO model and print it",
                        epilog=EXAMPLES["presample"], formatter_class=fmt)
    ps.add_argument("prompt", nargs="?", default="",
                    help="tags and/or sentences (a comma-separated part of 3+ words starting with a/an/the, "
                         "6+ words, or ending with '.' is a sentence); empty: TIPO writes from nothing")
    ps.add_argument("--tags", help="tags, given apart (then PROMPT is not split)")
    ps.add_argument("--nl", help="natural language, given apart")
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("--size", type=_size, help="WxH of the image to come (sent as aspect_ratio)")
    ps.add_argument("--ban", action="append", default=[], metavar="TEXT_OR_REGEX",
                    help="remove generated tags/sentences that contain or match this (repeatable)")
    ps.add_argument("--json", action="store_true", help="print the whole expansion as JSON")
    _presample_flags(ps, prefix="")

    i = sub.add_parser("info", help="print the generation metadata of an image", epilog=EXAMPLES["info"],
                       formatter_class=fmt)
    i.add_argument("image", type=Path)

    sub.add_parser("models", help="list registered models", epilog=EXAMPLES["models"], formatter_class=fmt)

    w = sub.add_parser("world", help="the procedural shapes world", epilog=EXAMPLES["world"], formatter_class=fmt)
    ws = w.add_subparsers(dest="world_command", required=True, metavar="WORLD_COMMAND")
    s = ws.add_parser("sample", help="write scenes: images, captions and a contact sheet",
                      epilog="example:\n  t2i world sample --n 16 --seed 0 --out samples", formatter_class=fmt)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--out", type=Path, required=True)
    d = ws.add_parser("dataset", help="write training shards",
                      epilog="example:\n  t2i world dataset --n 20000 --seed 0 --out data/shapes",
                      formatter_class=fmt)
    d.add_argument("--n", type=int, required=True)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--size", type=int, default=64)
    d.add_argument("--shard-size", type=int, default=1000)
    d.add_argument("--out", type=Path, required=True)
    su = ws.add_parser("suite", help="write a GenEval-style suite of shapes-world prompts",
                       epilog="example:\n  t2i world suite --per-task 64 --seed 0 --out suite.jsonl",
                       formatter_class=fmt)
    su.add_argument("--per-task", type=int, default=64)
    su.add_argument("--seed", type=int, default=0)
    su.add_argument("--out", type=Path, required=True)
    r = ws.add_parser("render-suite", help="render each suite line's ground-truth scene (GenEval layout)",
                      epilog="example:\n  t2i world render-suite --suite suite.jsonl --out gt", formatter_class=fmt)
    r.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    r.add_argument("--size", type=int, default=64)
    r.add_argument("--images-per-prompt", type=int, default=1)
    r.add_argument("--out", type=Path, required=True)
    sc = ws.add_parser("score", help="score a folder of images (GenEval layout) against a suite",
                       epilog="example:\n  t2i world score gt --suite suite.jsonl", formatter_class=fmt)
    sc.add_argument("folder", type=Path)
    sc.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    sc.add_argument("--size", type=_size, help="expected image size WxH; other sizes count as wrong")
    sc.add_argument("--results", type=Path, help="per-image results (default FOLDER/results.jsonl)")
    b = ws.add_parser("boxes", help="draw the detector's boxes over images (a contact sheet)",
                      epilog="example:\n  t2i world boxes gt --out boxes.png", formatter_class=fmt)
    b.add_argument("inputs", type=Path, nargs="+", help="images or folders (searched recursively for .png)")
    b.add_argument("--limit", type=int, default=64)
    b.add_argument("--columns", type=int, help="tiles per row (default: a square sheet); e.g. one row per model")
    b.add_argument("--out", type=Path, required=True)
    dc = ws.add_parser("detector-check", help="measure the detector on fresh renders, clean and degraded",
                       epilog="example:\n  t2i world detector-check --n 1000", formatter_class=fmt)
    dc.add_argument("--n", type=int, default=1000)
    dc.add_argument("--seed", type=int, default=1_000_000)
    dc.add_argument("--size", type=int, default=64)
    e = sub.add_parser("eval", help="generate a suite with a model (GenEval layout, resumable) and score it",
                       epilog="example:\n  t2i eval --model shapes-xl --out runs/eval-shapes-xl", formatter_class=fmt)
    e.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    e.add_argument("--model", "-m", default="shapes-xl")
    e.add_argument("--images-per-prompt", type=int, default=1)
    e.add_argument("--seed", type=int, default=0, help="image k of line i uses seed + i*K + k")
    e.add_argument("--steps", type=int)
    e.add_argument("--guidance", "--cfg", type=float)
    e.add_argument("--sampler")
    e.add_argument("--size", type=_size)
    e.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE")
    e.add_argument("--presample", action="store_true", help="presample every prompt (default tipo-tiny)")
    e.add_argument("--presample-model")
    e.add_argument("--compose", action="store_true", help="compose every prompt with an LLM (default omost-tiny)")
    e.add_argument("--compose-model")
    e.add_argument("--gt-program", action="store_true",
                   help="render each line's own scene as a Canvas program (the renderer alone)")
    e.add_argument("--region-mode", choices=["omost", "couple", "off"])
    e.add_argument("--region-text", choices=["omost", "own", "local", "local-pooled", "local-outside"],
                   help="as in generate")
    e.add_argument("--color-start", type=float, metavar="STRENGTH", help="as in generate")
    e.add_argument("--excite", metavar="WORDS",
                   help="as in generate (auto: each line's shape nouns; user: those of the line before --presample "
                        "expanded it)")
    e.add_argument("--hires", type=float, metavar="SCALE", help="as in generate (the images are scored at the "
                                                                 "larger size)")
    e.add_argument("--hires-strength", type=float, metavar="S", help="as in generate")
    e.add_argument("--out", type=Path, required=True)

    c = sub.add_parser("compare", help="two models' eval runs line by line: the score difference and its paired "
                                       "standard error",
                       epilog="example (suite seeds 0 and 1 of each model):\n  t2i compare --a runs/eval-a-s0 "
                              "runs/eval-a-s1 --b runs/eval-b-s0 runs/eval-b-s1", formatter_class=fmt)
    c.add_argument("--a", type=Path, nargs="+", required=True, metavar="DIR", help="model A's `t2i eval` folders")
    c.add_argument("--b", type=Path, nargs="+", required=True, metavar="DIR",
                   help="model B's, in the same order (each from the same suite, seed and images per prompt)")
    c.add_argument("--images", action="store_true",
                   help="also how alike the images are: PSNR of each of B's images against A's (e.g. a student "
                        "against its teacher)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")

    t = sub.add_parser("train", help="train a tiny model on the shapes world",
                       epilog="example:\n  t2i train shapes-xl --work runs/shapes-xl --out runs/shapes-xl/model",
                       formatter_class=fmt)
    t.add_argument("recipe", choices=["shapes-xl", "tipo-tiny", "omost-tiny", "paella-tiny", "distill"])
    t.add_argument("--work", type=Path, required=True, help="work folder: data, checkpoints (resumable)")
    t.add_argument("--out", type=Path, required=True, help="where the trained diffusers folder goes")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--unet-steps", type=int, help="shapes-xl: U-Net steps")
    t.add_argument("--steps", type=int, help="tipo-tiny / omost-tiny / paella-tiny: training steps")
    t.add_argument("--threads", type=int, help="CPU threads (default 2); 1 leaves a core free for other work")
    t.add_argument("--vae-steps", type=int, help="shapes-xl: VAE steps; paella-tiny: VQGAN steps")
    t.add_argument("--decoder-steps", type=int,
                   help="shapes-xl / paella-tiny: fine-tune the VAE / VQGAN decoder alone for this many steps "
                        "(paella-tiny with --init: the export's decoder, on its codes; default 0 then)")
    t.add_argument("--decoder-lr", type=float, metavar="LR",
                   help="paella-tiny: the VQGAN decoder stage's peak learning rate (default 5e-4)")
    t.add_argument("--decoder-adversarial", type=float, metavar="W",
                   help="paella-tiny: weight of a PatchGAN term in the VQGAN decoder stage, beside L1 + MSE "
                        "(balanced by gradient norms; the critic trains alone for its first 500 steps; default 0)")
    t.add_argument("--decoder-refine", type=int, metavar="C",
                   help="paella-tiny with --decoder-steps: give the VQGAN decoder (with --init, the export's) a "
                        "full-resolution refiner of C channels for its decoder stage (the codes stay)")
    t.add_argument("--decoder-oversample", type=_option, action="append", default=[], metavar="SHAPE=W",
                   help="paella-tiny: draw the VQGAN decoder stage's scenes holding SHAPE W times as often "
                        "(e.g. star=4: stars are what reconstructions lose)")
    t.add_argument("--vq-gate-init", type=float, metavar="G",
                   help="paella-tiny: the VQGAN ResBlocks' residual gates at init (default 1; 0 as released)")
    t.add_argument("--vq-lr", type=float, metavar="LR",
                   help="paella-tiny: the VQGAN's peak learning rate (default 6e-3; runs begun before used 1e-3)")
    t.add_argument("--scenes", type=int, help="scenes (shapes-xl) or documents (tipo-tiny) to train on")
    t.add_argument("--clip-steps", type=int,
                   help="shapes-xl: pre-train the text encoders contrastively for this many steps first")
    t.add_argument("--text-lr-scale", type=float,
                   help="shapes-xl: text encoders' learning rate / the U-Net's (0 freezes them)")
    t.add_argument("--unet-lr", type=float,
                   help="shapes-xl: the U-Net stage's peak learning rate (default 3e-4; lower it to polish a "
                        "shipped model with --init)")
    t.add_argument("--unet-init", help="shapes-xl: a diffusers U-Net folder to start from")
    t.add_argument("--unet-layers", type=int, help="shapes-xl: residual blocks per U-Net level (default 1)")
    t.add_argument("--unet-depth", type=_counts, metavar="N,N,N",
                   help="shapes-xl: transformer layers per U-Net level (default 1,1,1)")
    t.add_argument("--uncolored", type=float, metavar="P",
                   help="shapes-xl / distill: share of natural-language captions that name no colour (shapes-xl "
                        "default 0.15, and it may change it for the rest of a run, logged in adjustments.json; "
                        "distill default: as the teacher's RECIPE.json records)")
    t.add_argument("--oversample", type=_option, action="append", default=[], metavar="SHAPE=W",
                   help="shapes-xl / paella-tiny: draw the U-Net / token-model stage's scenes holding SHAPE W times "
                        "as often (e.g. star=2)")
    t.add_argument("--pair-weight", type=float, metavar="W",
                   help="shapes-xl: draw the U-Net stage's scenes of two objects of different shapes W times as "
                        "often (default 1)")
    t.add_argument("--ground-token", type=float, metavar="W",
                   help="shapes-xl: weight of TokenCompose's token grounding loss (each noun's cross-attention "
                        "inside its objects' masks; default 0 = off)")
    t.add_argument("--ground-pixel", type=float, metavar="W",
                   help="shapes-xl: weight of TokenCompose's pixel grounding loss (BCE of the noun's attention "
                        "against its mask; default 0 = off)")
    t.add_argument("--ground-max-t", type=int, metavar="T",
                   help="shapes-xl: ground only training rows noised to timesteps below T (default 1000 = all; "
                        "at high noise the layout is not decided yet)")
    t.add_argument("--prediction", choices=["v_prediction", "epsilon"],
                   help="shapes-xl: the U-Net's target (default v_prediction)")
    t.add_argument("--zero-snr", action=argparse.BooleanOptionalAction, default=None,
                   help="shapes-xl: rescale the noise schedule to zero terminal SNR (default on; needs v_prediction)")
    t.add_argument("--init", help="tipo-tiny / omost-tiny / shapes-xl / paella-tiny: an exported model folder to go "
                                   "on from (keeps its tokenizer; shapes-xl also its VAE and text encoders, and grows "
                                   "its U-Net when --unet-layers / --unet-depth ask for more blocks; paella-tiny its "
                                   "VQGAN, skipping the VQGAN stages, and its architecture)")
    t.add_argument("--clip-from", metavar="FOLDER|NAME",
                   help="paella-tiny: a frozen CLIP text tower whose pooled embedding the token model takes beside "
                        "the bytes, as Paella takes CLIP-H's: a folder with clip_text_encoder/ + clip_tokenizer/ or "
                        "text_encoder_2/ + tokenizer_2/, or a shipped model's name (shapes-xl)")
    t.add_argument("--snapshot", action="store_true",
                   help="shapes-xl / paella-tiny: export the run's latest U-Net (EMA weights) / token-model "
                        "checkpoint to --out now, without training")
    t.add_argument("--float16", action="store_true",
                   help="paella-tiny with --snapshot: store the export's weights in float16 (half the files; how "
                        "the package ships paella-tiny); it loads in float32")
    t.add_argument("--smoke", action="store_true", help="a few steps of everything (checks the recipe runs)")
    t.add_argument("--teacher", help="distill: the SDXL-family teacher (default shapes-xl)")
    t.add_argument("--student", choices=["koala-1b", "koala-700m"], help="distill: the student recipe")
    t.add_argument("--features", choices=["self_attention", "cross_attention", "block", "resnet", "none"],
                   help="distill: which features to match (default self_attention, KOALA's finding)")
    t.add_argument("--feature-loss", choices=["mse", "relative"],
                   help="distill: plain MSE per layer or MSE over the teacher feature's mean square (default)")
    t.add_argument("--w-feature", type=float, metavar="W", help="distill: weight of the feature loss (default 10)")
    t.add_argument("--feature-pairs", choices=["copied", "last", "stage"],
                   help="distill: which layers pair: each student layer with the teacher layer it was copied "
                        "from (default), each block's last layer with the teacher block's last, or one pair "
                        "per stage")
    t.add_argument("--student-init", choices=["teacher", "random"],
                   help="distill: start the student from the teacher's kept blocks (default, KOALA) or from "
                        "random weights (to see what the losses teach from nothing)")
    t.add_argument("--data", metavar="FOLDER",
                   help="distill: train on your own captioned images instead of the shapes world (a metadata.jsonl "
                        "with file_name and text, or a .txt caption beside each image); set --size to the "
                        "teacher's (1024 for SDXL)")
    t.add_argument("--size", type=int, help="distill / paella-tiny: training image side in pixels (default 64; "
                                            "paella-tiny: also its images' default size, a multiple of 16)")
    t.add_argument("--batch", type=int,
                   help="distill / shapes-xl (U-Net stage) / paella-tiny (token model): images per step (default 32)")
    t.add_argument("--lr", type=float, help="distill / paella-tiny: peak learning rate (default 3e-4 / 1e-3)")
    t.add_argument("--device", help="distill / shapes-xl / paella-tiny: auto (default: cuda when there is one), "
                                    "cpu, cuda or cuda:N")
    t.add_argument("--gradient-checkpointing", action="store_true", default=None,
                   help="distill: recompute the student's activations in backward (less GPU memory)")

    cv = sub.add_parser("convert", help="a pickled state dict (.pt/.pth/.bin/.ckpt), or a diffusers SDXL folder "
                                        "(as one original-layout file), to .safetensors",
                        epilog="examples:\n  t2i convert paella_v3.pt paella_v3.safetensors\n"
                               "  t2i convert my-sdxl-folder my-sdxl.safetensors", formatter_class=fmt)
    cv.add_argument("src", type=Path, help="a pickle (read with weights_only=True: code in the file is never run) "
                                           "or a diffusers SDXL folder")
    cv.add_argument("dst", type=Path)
    return p


def _presample_flags(p: argparse.ArgumentParser, prefix: str = "presample-") -> None:
    p.add_argument(f"--{prefix}model", dest="presample_model",
                   help="presampler: registered name (tipo-tiny, tipo-500m-ft, ...), folder, .gguf file or "
                        "http(s) URL of an OpenAI-compatible server (default tipo-tiny)")
    p.add_argument(f"--{prefix}target", dest="presample_target",
                   help="length: very_short, short, long, very_long or auto (default: the model's)")
    p.add_argument(f"--{prefix}format", dest="presample_format",
                   help="output format: 'tag only', 'NL only', 'both, tag first', 'both, NL first', "
                        "'both + generated NL' or a template (default: the model's)")
    p.add_argument(f"--{prefix}temperature", dest="presample_temperature", type=float,
                   help="LLM sampling temperature (default: the model's; tipo-tiny 1.0, released TIPO 0.35)")
    p.add_argument("--llm-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help=LLM_OPTION_HELP)


# ---------------------------------------------------------------------------- commands

def _compose(args: argparse.Namespace) -> int:
    from t2i.backends import default_registry
    from t2i.outputs import check_free, save_png_atomic
    from t2i.stages import open_composer

    _quiet_libraries()
    if args.preview is not None:
        check_free([args.preview])  # before the model writes anything
    registry = args.registry or default_registry()
    composer = open_composer(args.compose_model, registry, dict(args.llm_option))
    out = composer.compose(args.prompt, seed=args.seed)
    for k, instruction in enumerate(args.edit, start=1):
        out = composer.compose(instruction, history=out.messages[1:], seed=args.seed + k)
    for w in out.warnings:
        print(f"warning: {printable(w)}", file=sys.stderr)
    print(printable(out.program))
    path = args.preview or _numbered(Path("outputs") / datetime.date.today().isoformat(), "canvas", ".png")
    save_png_atomic(out.canvas.process().preview(), path)
    print(f"preview: {path}", file=sys.stderr)
    return 0


MAX_PROGRAM_BYTES = 400_000  # a Canvas program file (the request keeps at most 100,000 characters)


def _numbered(folder: Path, stem: str, suffix: str) -> Path:
    """folder/stem-NNNNN.suffix with the next free number."""
    n = 0
    while (folder / f"{stem}-{n:05d}{suffix}").exists():
        n += 1
    return folder / f"{stem}-{n:05d}{suffix}"


def _presample(args: argparse.Namespace) -> int:
    from t2i.backends import default_registry
    from t2i.stages import open_presampler, presample
    from t2i.types import GenerationRequest, PresampleOptions

    _quiet_libraries()
    registry = args.registry or default_registry()
    presampler = open_presampler(args.presample_model, registry, dict(args.llm_option), ban=tuple(args.ban))
    opts = PresampleOptions(enabled=True, model=args.presample_model, seed=args.seed, target=args.presample_target,
                            temperature=args.presample_temperature, format=args.presample_format)
    width, height = args.size if args.size else (None, None)
    request = GenerationRequest(prompt=args.prompt, width=width, height=height, seed=args.seed, presample=opts)
    apart = args.tags is not None or args.nl is not None
    tags = [t for t in (args.tags, args.prompt) if t] if apart else None
    exp = presample(request, presampler, tags=tags, nl=args.nl if apart else None)
    for w in exp.warnings:
        print(f"warning: {printable(w)}", file=sys.stderr)
    print(json.dumps(exp.to_dict(), indent=2, ensure_ascii=False) if args.json else printable(exp.prompt))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from t2i.backends import default_registry
    from t2i.generate import check_request, generate, save_result
    from t2i.licences import licence_notice_once
    from t2i.limits import Limits
    from t2i.metadata import read_image_metadata, replay_request
    from t2i.outputs import OutputWriter
    from t2i.cancel import Cancelled
    from t2i.types import GenerationRequest

    _quiet_libraries()
    registry = args.registry or default_registry()
    if args.from_image is not None:
        from t2i.replay import check_untrusted_request

        if args.prompt:
            raise ValueError("give either a prompt or --from IMAGE, not both")
        request = replay_request(read_image_metadata(args.from_image))
        given = {k for k, v in (("model", args.model), ("presample_model", args.presample_model),
                                ("compose_model", args.compose_model)) if v is not None}
        check_untrusted_request(request, registry, str(args.from_image), given | {k for k, _ in args.option})
    elif not args.prompt or not args.prompt.strip():
        raise ValueError("a prompt is required (or --from IMAGE)")
    else:
        request = GenerationRequest(prompt=args.prompt)
    changes: dict = {}
    for key, value in (("model", args.model), ("negative_prompt", args.negative), ("seed", args.seed),
                       ("steps", args.steps), ("guidance", args.guidance), ("sampler", args.sampler),
                       ("n_images", args.n)):
        if value is not None:
            changes[key] = value
    if args.size is not None:
        changes["width"], changes["height"] = args.size
    if args.option:
        changes["model_options"] = {**request.model_options, **dict(args.option)}
    if args.compose or args.program is not None:
        from t2i.types import ComposeOptions
        from t2i.userfiles import read_user_text

        program = read_user_text(args.program, MAX_PROGRAM_BYTES) if args.program is not None else None
        changes["compose"] = ComposeOptions(enabled=True, model=args.compose_model, program=program)
    elif args.compose_model is not None and request.compose.enabled:  # a replay's composer, chosen here
        from dataclasses import replace

        changes["compose"] = replace(request.compose, model=args.compose_model)
    flags = {"region_mode": args.region_mode, "region_text": args.region_text, "init_strength": args.color_start,
             "hires_scale": args.hires, "hires_strength": args.hires_strength, "excite": args.excite}
    if any(v is not None for v in flags.values()):
        changes["model_options"] = {**changes.get("model_options", request.model_options),
                                    **{k: v for k, v in flags.items() if v is not None}}
    if args.presample:
        from t2i.types import PresampleOptions

        changes["presample"] = PresampleOptions(enabled=True, model=args.presample_model,
                                                target=args.presample_target, format=args.presample_format,
                                                temperature=args.presample_temperature)
    elif args.presample_model is not None and request.presample.enabled:  # a replay's presampler, chosen here
        from dataclasses import replace

        changes["presample"] = replace(request.presample, model=args.presample_model)
    request = request.with_(**changes) if changes else request.validate()

    # 1. everything that can fail is checked before a model is loaded or an image drawn
    limits = Limits(max_pixels=args.max_pixels)
    spec = registry.resolve(request.model).spec
    check_request(request, spec, limits)
    writer = OutputWriter(root=args.outputs_root, out=args.out, n_images=request.n_images)
    writer.check_batch()
    notice = licence_notice_once(spec)
    if notice:
        print(notice, file=sys.stderr)
    bars: list[tqdm] = []  # made at the first step, when its total is known (no "0step" line before it)

    def step(i: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="generating", unit="step", file=sys.stderr))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(i - bar.n)

    # 2. the language models, then the images
    presampler = None
    if request.presample.enabled:
        from t2i.stages import open_presampler

        presampler = open_presampler(request.presample.model, registry, dict(args.llm_option))
    composer = None
    if request.compose.enabled and request.compose.program is None:
        from t2i.stages import open_composer

        composer = open_composer(request.compose.model, registry, dict(args.llm_option))
    try:
        result = generate(request, registry, callback=step, presampler=presampler, composer=composer, limits=limits)
    except Cancelled:
        print("cancelled; nothing was written", file=sys.stderr)
        return 130
    finally:
        for bar in bars:
            bar.close()
    for w in result.warnings:
        print(f"warning: {printable(w)}", file=sys.stderr)
    if result.presampled_prompt is not None:
        print(f"presampled prompt: {printable(result.presampled_prompt)}", file=sys.stderr)
    # 3. saved one by one; an interruption names what is already on disk
    written: list[Path] = []
    try:
        save_result(result, writer, written)
    except BaseException:
        if written:
            print(f"stopped after writing {len(written)} of {len(result.images)} images:", file=sys.stderr)
            for path in written:
                print(path)
        raise
    for path in written:
        print(path)
    return 0


def _quiet_libraries() -> None:
    """Keep the libraries' own progress bars and notices off the terminal (ours are shown instead)."""
    import importlib.util

    if importlib.util.find_spec("diffusers") is not None:
        from diffusers.utils import logging as dlog

        dlog.disable_progress_bar()
        dlog.set_verbosity_error()
    if importlib.util.find_spec("transformers") is not None:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()


def _info(args: argparse.Namespace) -> int:
    from t2i.metadata import read_image_metadata

    meta = read_image_metadata(args.image)
    if meta.parameters is None and meta.request is None:
        raise ValueError(f"{args.image}: no generation metadata")
    if meta.parameters:
        print(printable(meta.parameters))  # an image's text may hold escape sequences: shown, never obeyed
    if meta.request is not None:
        print()
        print(printable(json.dumps({"seed": meta.seed, "index": meta.index, "request": meta.request.to_dict()},
                                   indent=2, ensure_ascii=False)))
    return 0


def _models(args: argparse.Namespace) -> int:
    from t2i.backends import default_registry

    registry = args.registry or default_registry()
    print(f"{'name':<34} {'kind':<7} {'role':<10} {'offline':<8} {'licence':<40} source")
    for s in registry.specs():
        avail = "yes" if registry.is_available(s) else "no"
        print(f"{s.name:<34} {s.kind:<7} {s.role:<10} {avail:<8} {s.licence.name[:40]:<40} {s.source}")
    return 0


def _load_suite(path: Path | None):
    from t2i.world.suite import builtin_suite, read_suite

    return read_suite(path) if path is not None else builtin_suite()


def _world(args: argparse.Namespace) -> int:
    cmd = args.world_command
    if cmd == "sample":
        return _world_sample(args)
    if cmd == "dataset":
        from t2i.world.dataset import write_dataset

        print(write_dataset(args.out, args.n, args.seed, args.size, args.shard_size, progress=True))
        return 0
    if cmd == "suite":
        from t2i.world.suite import build_suite, write_suite

        lines = build_suite(args.per_task, args.seed)
        write_suite(lines, args.out)
        print(f"{len(lines)} lines -> {args.out}")
        return 0
    if cmd == "render-suite":
        from t2i.world.suite import render_suite

        lines = _load_suite(args.suite)
        if args.out.is_dir() and any(args.out.iterdir()):
            raise FileExistsError(f"{args.out} is not empty; t2i never overwrites (give a new or empty folder)")
        n = render_suite(lines, args.out, args.size, args.images_per_prompt)
        print(f"{n} images -> {args.out}")
        return 0
    if cmd == "score":
        return _world_score(args)
    if cmd == "boxes":
        return _world_boxes(args)
    if cmd == "detector-check":
        from t2i.world.checks import detector_accuracy

        for degraded in (False, True):
            print(detector_accuracy(args.n, args.seed, args.size, degraded, progress=True).line())
        return 0
    raise ValueError(f"unknown world command {cmd!r}")


def _world_sample(args: argparse.Namespace) -> int:
    from t2i.outputs import check_free, save_png_atomic, write_new_text
    from t2i.world.captions import captions
    from t2i.world.draw import render_scene
    from t2i.world.scene import scene_for_seed
    from t2i.world.sheet import contact_sheet

    if args.n < 1:
        raise ValueError("--n must be at least 1")
    names = [f"{k:05d}.png" for k in range(args.n)]
    check_free([args.out / name for name in (*names, "captions.jsonl", "contact_sheet.png")])
    images, tags, records = [], [], []
    for k, name in enumerate(names):
        seed = args.seed + k
        scene = scene_for_seed(seed)
        caps = captions(scene, random.Random(seed ^ 0x5EED))
        img = render_scene(scene, args.size)
        save_png_atomic(img, args.out / name)
        images.append(img)
        tags.append(caps.natural)
        records.append(json.dumps({"file": name, "seed": seed, "tags": caps.tags, "natural": caps.natural,
                                   "canvas": caps.canvas, "scene": scene.to_dict()}) + "\n")
    write_new_text(args.out / "captions.jsonl", "".join(records))
    save_png_atomic(contact_sheet(images, tags), args.out / "contact_sheet.png")
    print(f"{args.n} scenes -> {args.out} (captions.jsonl, contact_sheet.png)")
    return 0


def _world_score(args: argparse.Namespace) -> int:
    from t2i.outputs import replace_file, write_new_text
    from t2i.world.suite import score_folder

    if args.results is not None and os.path.lexists(args.results):  # before scoring, not after
        raise FileExistsError(f"{args.results} already exists; t2i never overwrites (choose another --results)")
    result = score_folder(args.folder, _load_suite(args.suite), args.size, progress=True)
    text = "".join(json.dumps(v.to_dict()) + "\n" for v in result.verdicts)
    if args.results is not None:
        out = write_new_text(args.results, text)
    else:  # the folder's own record of its latest scoring, replaced atomically
        out = replace_file(args.folder / "results.jsonl", text)
    for problem in result.problems:
        print(f"warning: {printable(problem)}", file=sys.stderr)
    print(result.table())
    print(f"per-image results -> {out}")
    return 0


def _world_boxes(args: argparse.Namespace) -> int:
    from PIL import Image

    from t2i.outputs import check_free, save_png_atomic
    from t2i.world.detector import detect, load_rgb
    from t2i.world.sheet import contact_sheet, draw_detections

    if args.out.suffix.lower() != ".png":
        raise ValueError(f"{args.out}: the contact sheet is a .png file")
    check_free([args.out])

    files: list[Path] = []
    for p in args.inputs:
        if p.is_dir():
            files += sorted(q for q in p.rglob("*.png") if q.resolve() != args.out.resolve())
        elif os.path.lexists(p):  # a file; anything else is refused by the image reader
            files.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    if not files:
        raise ValueError(f"no .png images in {', '.join(map(str, args.inputs))}")
    files = files[: args.limit]
    tiles, labels = [], []
    for f in files:
        arr = load_rgb(f)
        img = Image.fromarray((arr * 255).round().astype("uint8"))
        dets = detect(arr)
        tiles.append(draw_detections(img, dets, scale=max(1.0, 160 / max(img.size))))
        name = f"{f.parent.parent.name}/{f.name}" if f.parent.name == "samples" else f.name
        labels.append(f"{name}: " + ", ".join(f"{d.color} {d.shape}" for d in dets))
    if args.columns is not None and args.columns < 1:
        raise ValueError(f"--columns must be at least 1, got {args.columns}")
    save_png_atomic(contact_sheet(tiles, labels, columns=args.columns), args.out)
    print(f"{len(files)} images -> {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from t2i.backends import default_registry
    from t2i.evaluation.runner import run_suite

    _quiet_libraries()
    settings: dict = {k: v for k, v in (("steps", args.steps), ("guidance", args.guidance),
                                        ("sampler", args.sampler)) if v is not None}
    if args.size is not None:
        settings["width"], settings["height"] = args.size
    regional = {k: v for k, v in (("region_mode", args.region_mode), ("region_text", args.region_text),
                                  ("init_strength", args.color_start), ("excite", args.excite),
                                  ("hires_scale", args.hires), ("hires_strength", args.hires_strength))
                if v is not None}
    if args.option or regional:
        settings["model_options"] = dict(args.option) | regional
    if args.compose and args.gt_program:
        raise ValueError("give --compose (an LLM writes programs) or --gt-program (the scenes' own), not both")
    registry = args.registry or default_registry()
    presampler = composer = None
    if args.presample:
        from t2i.stages import open_presampler
        from t2i.types import PresampleOptions

        settings["presample"] = PresampleOptions(enabled=True, model=args.presample_model)
        presampler = open_presampler(args.presample_model, registry)
    if args.compose:
        from t2i.stages import open_composer
        from t2i.types import ComposeOptions

        settings["compose"] = ComposeOptions(enabled=True, model=args.compose_model)
        composer = open_composer(args.compose_model, registry)
    from t2i.evaluation.runner import ground_truth_program

    run = run_suite(_load_suite(args.suite), registry, args.model, args.out, args.images_per_prompt, args.seed,
                    settings, progress=True, program_for=ground_truth_program if args.gt_program else None,
                    presampler=presampler, composer=composer)
    for problem in run.score.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(run.score.table())
    print(f"{run.generated} images generated in {run.seconds:.0f} s; results in {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.recipe in ("tipo-tiny", "omost-tiny"):
        from t2i.train.omost_tiny import omost_tiny_config, train_omost_tiny
        from t2i.train.small_lm import SmallLMConfig
        from t2i.train.tipo_tiny import train_tipo_tiny

        if args.smoke:
            cfg = SmallLMConfig.smoke()
            if args.recipe == "omost-tiny":
                cfg.context = 2048
        else:
            cfg = SmallLMConfig() if args.recipe == "tipo-tiny" else omost_tiny_config()
        settings = (("steps", args.steps), ("n_docs", args.scenes), ("threads", args.threads), ("init", args.init))
        bad = [flag for flag, v in (("--unet-steps", args.unet_steps), ("--vae-steps", args.vae_steps),
                                    ("--decoder-steps", args.decoder_steps)) if v is not None]
        run = train_tipo_tiny if args.recipe == "tipo-tiny" else train_omost_tiny
    elif args.recipe == "distill":
        from functools import partial

        from t2i.backends import default_registry
        from t2i.distill.recipe import DistillConfig, train_distill

        cfg = DistillConfig(n_scenes=16, steps=3, batch=4, warmup=1) if args.smoke else DistillConfig()
        settings = (("steps", args.steps), ("n_scenes", args.scenes), ("threads", args.threads),
                    ("teacher", args.teacher), ("student", args.student), ("features", args.features),
                    ("feature_loss", args.feature_loss), ("w_feature", args.w_feature),
                    ("feature_pairing", args.feature_pairs),
                    ("student_init", args.student_init), ("uncolored_fraction", args.uncolored),
                    ("data", args.data), ("size", args.size), ("batch", args.batch), ("lr", args.lr),
                    ("device", args.device), ("gradient_checkpointing", args.gradient_checkpointing))
        bad = [flag for flag, v in (("--unet-steps", args.unet_steps), ("--vae-steps", args.vae_steps),
                                    ("--decoder-steps", args.decoder_steps)) if v is not None]
        registry = args.registry or default_registry()
        run = partial(train_distill, registry=registry, command="t2i " + " ".join(sys.argv[1:]))
    elif args.recipe == "paella-tiny":
        from functools import partial

        from t2i.train.paella_tiny import PaellaTinyConfig, train_paella_tiny

        cfg = PaellaTinyConfig.smoke() if args.smoke else PaellaTinyConfig()
        settings = (("steps", args.steps), ("vq_steps", args.vae_steps), ("n_scenes", args.scenes),
                    ("threads", args.threads),
                    ("init_decoder_steps" if args.init else "vq_decoder_steps", args.decoder_steps),
                    ("vq_decoder_lr", args.decoder_lr), ("vq_decoder_adversarial", args.decoder_adversarial),
                    ("vq_decoder_refine", args.decoder_refine),
                    ("vq_decoder_oversample", _weights(args.decoder_oversample, "--decoder-oversample")),
                    ("oversample", _weights(args.oversample)),
                    ("vq_gate_init", args.vq_gate_init), ("vq_lr", args.vq_lr), ("batch", args.batch),
                    ("lr", args.lr), ("device", args.device), ("size", args.size))
        bad = ["--unet-steps"] if args.unet_steps is not None else []
        if args.init:  # the export's architecture; a --clip-from that differs is refused by the recipe
            from dataclasses import replace

            from t2i.train.paella_init import init_architecture

            cfg = replace(cfg, **init_architecture(Path(args.init)), init_from=args.init)
        if args.clip_from:
            cfg = cfg.with_clip(args.clip_from)
        run = partial(train_paella_tiny, command="t2i " + " ".join(sys.argv[1:]))
    else:
        from t2i.train.shapes_xl import ShapesXLConfig, train_shapes_xl

        cfg = ShapesXLConfig.smoke() if args.smoke else ShapesXLConfig()
        settings = (("unet_steps", args.unet_steps), ("vae_steps", args.vae_steps), ("n_scenes", args.scenes),
                    ("decoder_steps", args.decoder_steps), ("threads", args.threads),
                    ("clip_steps", args.clip_steps), ("text_lr_scale", args.text_lr_scale),
                    ("unet_init", args.unet_init), ("prediction_type", args.prediction),
                    ("zero_terminal_snr", args.zero_snr), ("unet_layers_per_block", args.unet_layers),
                    ("unet_transformer_depth", args.unet_depth), ("uncolored_fraction", args.uncolored),
                    ("init_from", args.init), ("oversample", _weights(args.oversample)), ("unet_lr", args.unet_lr),
                    ("pair_weight", args.pair_weight),
                    ("ground_token", args.ground_token), ("ground_pixel", args.ground_pixel),
                    ("ground_max_t", args.ground_max_t), ("unet_batch", args.batch), ("device", args.device))
        bad = [flag for flag, v in (("--steps", args.steps), ("--lr", args.lr)) if v is not None]
        run = train_shapes_xl
    if args.recipe not in ("tipo-tiny", "omost-tiny", "shapes-xl", "paella-tiny") and args.init is not None:
        bad.append("--init")
    if args.recipe != "shapes-xl":
        bad += [flag for flag, v in (("--clip-steps", args.clip_steps), ("--text-lr-scale", args.text_lr_scale),
                                     ("--unet-lr", args.unet_lr), ("--ground-token", args.ground_token),
                                     ("--pair-weight", args.pair_weight),
                                     ("--ground-pixel", args.ground_pixel), ("--ground-max-t", args.ground_max_t),
                                     ("--unet-init", args.unet_init), ("--prediction", args.prediction),
                                     ("--zero-snr", args.zero_snr), ("--unet-layers", args.unet_layers),
                                     ("--unet-depth", args.unet_depth)) if v is not None]
        bad += ["--oversample"] if args.oversample and args.recipe != "paella-tiny" else []
    if args.recipe != "paella-tiny":
        bad += [flag for flag, v in (("--vq-gate-init", args.vq_gate_init), ("--vq-lr", args.vq_lr),
                                     ("--clip-from", args.clip_from), ("--decoder-lr", args.decoder_lr),
                                     ("--decoder-adversarial", args.decoder_adversarial),
                                     ("--decoder-refine", args.decoder_refine))
                if v is not None]
        bad += ["--decoder-oversample"] if args.decoder_oversample else []
    if args.vq_gate_init is not None and not math.isfinite(args.vq_gate_init):
        print(f"--vq-gate-init must be a finite number, got {args.vq_gate_init}", file=sys.stderr)
        return 2
    if args.recipe not in ("shapes-xl", "distill") and args.uncolored is not None:
        bad.append("--uncolored")
    if args.recipe != "distill":
        bad += [flag for flag, v in (("--teacher", args.teacher), ("--student", args.student),
                                     ("--features", args.features), ("--feature-loss", args.feature_loss),
                                     ("--w-feature", args.w_feature), ("--student-init", args.student_init),
                                     ("--feature-pairs", args.feature_pairs), ("--data", args.data),
                                     ("--gradient-checkpointing", args.gradient_checkpointing))
                 if v is not None]
        bad += ["--size"] if args.size is not None and args.recipe != "paella-tiny" else []
    if args.recipe in ("tipo-tiny", "omost-tiny"):
        bad += [flag for flag, v in (("--batch", args.batch), ("--lr", args.lr), ("--device", args.device))
                if v is not None]
    if args.snapshot and args.recipe not in ("shapes-xl", "paella-tiny"):
        bad.append("--snapshot")
    if args.float16 and not (args.snapshot and args.recipe == "paella-tiny"):
        bad.append("--float16 (paella-tiny --snapshot only)")
    if bad:
        print(f"t2i train {args.recipe}: {', '.join(bad)} does not apply to this recipe", file=sys.stderr)
        return 2
    if args.unet_lr is not None and not 0 < args.unet_lr < 1:
        print(f"t2i train shapes-xl: --unet-lr must be between 0 and 1, got {args.unet_lr}", file=sys.stderr)
        return 2
    if args.snapshot:
        if args.recipe == "paella-tiny":
            import torch

            from t2i.train.paella_tiny import export_snapshot

            print(export_snapshot(args.work, args.out, torch.float16 if args.float16 else None,
                                  "t2i " + " ".join(sys.argv[1:])))
            return 0
        from t2i.train.shapes_xl import export_snapshot as export_unet

        print(export_unet(args.work, args.out))
        return 0
    cfg.seed = args.seed
    for name, value in settings:
        if value is not None:
            setattr(cfg, name, value)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, step: int, total: int, loss: float) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, initial=step - 1, desc=stage, unit="step", file=sys.stderr)
        bar.update(step - bar.n)
        if not math.isnan(loss):  # stages without a loss pass nan
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    out = run(cfg, args.work, args.out, progress=progress)
    for bar in bars.values():
        bar.close()
    print(out)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from t2i.paella.checkpoints import convert_to_safetensors

    if args.dst.suffix != ".safetensors":
        raise ValueError(f"{args.dst}: the output must be a .safetensors file")
    if args.dst.exists():
        raise ValueError(f"{args.dst} exists; not overwriting it")
    if args.src.is_dir():  # a diffusers SDXL folder -> one original-layout file (A1111, ComfyUI, from_single_file)
        import json

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


def _compare(args: argparse.Namespace) -> int:
    from t2i.evaluation.compare import compare_runs, format_comparison

    result = compare_runs(args.a, args.b, images=args.images)
    print(json.dumps(result.to_dict(), indent=1) if args.json else format_comparison(result))
    return 0


COMMANDS = {"eval": _eval, "compare": _compare, "train": _train, "convert": _convert, "generate": _generate,
            "presample": _presample, "compose": _compose, "info": _info, "models": _models, "world": _world}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every `finally` runs (temporary files are removed)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


# Arguments naming something a command writes: never a symbolic link (t2i does not write through links).
WRITE_DESTS = ("out", "work", "results", "preview", "dst")
# Commands whose outputs are folders (the rest write files).
FOLDER_OUTPUTS = {("world", "sample"): ("out",), ("world", "dataset"): ("out",), ("world", "render-suite"): ("out",),
                  ("eval",): ("out",), ("train",): ("work", "out")}


def _check_args(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """The edge's rules for every command: UTF-8 text only, no control characters, no links as outputs."""
    from t2i.text import text_problem

    for k, arg in enumerate(argv, start=1):
        problem = text_problem(arg)
        if problem:
            raise ValueError(f"command-line argument {k} ({printable(arg)[:60]!r}) {problem}")
    for dest in WRITE_DESTS:
        value = getattr(args, dest, None)
        if value is not None and Path(value).is_symlink():
            raise ValueError(f"{value} is a symbolic link; t2i does not write through links (name the real path)")
    command = (args.command, *((args.world_command,) if args.command == "world" else ()))
    for dest in FOLDER_OUTPUTS.get(command, ()):
        value = getattr(args, dest, None)
        if value is not None and Path(value).exists() and not Path(value).is_dir():
            raise ValueError(f"{value} exists and is not a folder; t2i never overwrites (name a new folder)")


def printable(text: object) -> str:
    """Text from images, models or users made safe for a terminal (control characters escaped)."""
    from t2i.text import printable as escape

    return escape(str(text))


def main(argv: Sequence[str] | None = None, registry: ModelRegistry | None = None) -> int:
    """Entry point of the `t2i` command; returns the exit code.  `registry` replaces the default one."""
    import signal
    import threading

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.registry = registry
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _check_args(args, argv)
        return COMMANDS[args.command](args)
    except Terminated:
        print("t2i: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("t2i: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0  # output piped into a command that stopped reading (e.g. head)
    except (ValueError, OSError, LLMError) as e:
        if args.debug:
            raise
        print(f"t2i: error: {printable(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not a bad input: still one line, and how to see more
        if args.debug:
            raise
        print(f"t2i: internal error: {type(e).__name__}: {printable(e)} (t2i --debug ... shows the traceback; "
              "please report it)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
