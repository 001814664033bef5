"""Contrastive pre-training of shapes-xl's two text encoders against a small image tower: a shapes-world CLIP.

SDXL conditions its U-Net on frozen CLIP text encoders that were pre-trained on image-text pairs. Text
encoders learnt from scratch through the U-Net's cross-attention alone learn slowly (shapes-xl v1 drew the
right colour for 0.09 of the suite's colour prompts after 5,000 steps).  This stage gives them CLIP's
objective first (Radford et al. 2021: symmetric InfoNCE over the batch, learnable temperature), with
NegCLIP-style hard negatives (Yuksekgonul et al. 2023): for every image, captions of the *same* scene with
one attribute changed (an object's colour or shape, two objects' colours or places swapped), captioned with
the same random draws so only that attribute's words differ.  Plain CLIP needs no binding to win a random
batch; the hard negatives make binding colours and places to the right objects pay.

Text towers: `te1` (CLIPTextModel) pooled EOS state through a training-only linear head; `te2`
(CLIPTextModelWithProjection) `text_embeds`.  Image tower: 4 strided conv stages 64 -> 4, flattened (so
places survive) and projected; both text towers share it.  `stage_clip` runs it as shapes-xl's clip stage.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from t2i.train.checkpoint import SaveTimer, load_checkpoint, save_checkpoint
from t2i.train.schedule import cosine_lr, optimizer_step
from t2i.train.shapes_xl_config import ShapesXLConfig
from t2i.train.world_data import training_caption

PERTURBATIONS = ("recolor", "reshape", "swap_colors", "swap_places")
Progress = Callable[[str, int, int, float], None]  # (stage, step, total, loss)


@dataclass
class ClipSettings:
    steps: int = 3_000
    batch: int = 128
    lr: float = 1e-3
    warmup: int = 100
    negatives: int = 2  # hard-negative captions per image
    width: int = 32  # image tower's first stage channels
    checkpoint_seconds: float = 180.0
    checkpoint_steps: int = 0


class ImageTower(nn.Module):
    """(B, 3, 64, 64) in [-1, 1] -> (B, dim) unit vectors."""

    def __init__(self, dim: int, width: int = 32, size: int = 64) -> None:
        super().__init__()
        chans = (3, width, 2 * width, 4 * width, 4 * width)
        layers: list[nn.Module] = []
        for k, (cin, cout) in enumerate(zip(chans[:-1], chans[1:], strict=False)):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]
            if k:  # a second conv per stage, except at 32x32 where it would cost most
                layers += [nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]
        self.convs = nn.Sequential(*layers)
        side = size // 16  # four stride-2 stages
        self.proj = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * side * side, 4 * dim), nn.SiLU(),
                                  nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.convs(x)), dim=-1)


class TextTowers(nn.Module):
    """Both SDXL text encoders with CLIP heads: ids (B, L) -> two (B, dim) unit vectors."""

    def __init__(self, te1: nn.Module, te2: nn.Module, dim: int) -> None:
        super().__init__()
        self.te1, self.te2 = te1, te2
        self.head1 = nn.Linear(te1.config.hidden_size, dim)
        if te2.config.projection_dim != dim:
            raise ValueError(f"text_encoder_2 projects to {te2.config.projection_dim}, the image tower to {dim}")

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.head1(self.te1(ids).pooler_output)
        b = self.te2(ids).text_embeds
        return F.normalize(a, dim=-1), F.normalize(b, dim=-1)


def perturb(scene: dict, kind: str, rng: random.Random) -> dict | None:
    """The scene with one attribute changed (`PERTURBATIONS`), or None when that change is impossible or void."""
    from t2i.world.scene import Scene, SceneError
    from t2i.world.vocab import COLORS, SHAPES

    s = Scene.from_dict(scene)
    objs = list(s.objects)
    k = rng.randrange(len(objs))
    if kind == "recolor":
        choices = [c for c in COLORS if c not in (objs[k].color, s.background)]
        objs[k] = dataclasses.replace(objs[k], color=rng.choice(choices))
    elif kind == "reshape":
        objs[k] = dataclasses.replace(objs[k], shape=rng.choice([x for x in SHAPES if x != objs[k].shape]))
    else:
        attr = "color" if kind == "swap_colors" else "shape"
        pairs = [(i, j) for i in range(len(objs)) for j in range(i)
                 if getattr(objs[i], attr) != getattr(objs[j], attr)]
        if not pairs:
            return None
        i, j = rng.choice(pairs)
        if kind == "swap_colors":
            objs[i], objs[j] = (dataclasses.replace(objs[i], color=objs[j].color),
                                dataclasses.replace(objs[j], color=objs[i].color))
        else:  # the two objects trade places: each takes the other's box
            objs[i], objs[j] = (dataclasses.replace(objs[j], shape=objs[i].shape, color=objs[i].color),
                                dataclasses.replace(objs[i], shape=objs[j].shape, color=objs[j].color))
    try:
        out = Scene(background=s.background, objects=tuple(objs))
    except SceneError:
        return None
    return out.to_dict() if out != s else None


def caption_batch(scenes: list[dict], seeds: list[int], negatives: int, tags_fraction: float
                  ) -> tuple[list[str], list[list[str]]]:
    """Positive captions and `negatives` hard-negative captions per scene (a fresh draw when none applies)."""
    pos, neg = [], []
    for scene, seed in zip(scenes, seeds, strict=True):
        pos.append(training_caption(scene, random.Random(seed), tags_fraction))
        rng = random.Random(seed + 1)
        mine: list[str] = []
        for _ in range(8 * negatives):
            if len(mine) == negatives:
                break
            other = perturb(scene, rng.choice(PERTURBATIONS), rng)
            if other is not None:
                text = training_caption(other, random.Random(seed), tags_fraction)
                if text != pos[-1]:
                    mine.append(text)
        while len(mine) < negatives:  # e.g. one object that admits no change: a random other scene's caption
            mine.append(training_caption(scenes[rng.randrange(len(scenes))], rng, tags_fraction))
        neg.append(mine)
    return pos, neg


def clip_loss(img: torch.Tensor, txt: torch.Tensor, hard: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE; image->text rows also see their own hard negatives.

    img, txt: (B, D) unit vectors of matching pairs; hard: (B, K, D) each image's hard-negative texts.
    """
    logits = scale * img @ txt.T  # (B, B)
    hard_logits = scale * torch.einsum("bd,bkd->bk", img, hard)  # (B, K)
    target = torch.arange(len(img))
    i2t = F.cross_entropy(torch.cat([logits, hard_logits], dim=1), target)
    t2i = F.cross_entropy(logits.T, target)
    return (i2t + t2i) / 2


def _ids(tokenizer, texts: list[str]) -> torch.Tensor:
    # Padding to the batch's longest caption is exact: the encoders are causal and pool at the first EOS.
    return tokenizer(texts, padding="longest", truncation=True, return_tensors="pt").input_ids


def train_clip(settings: ClipSettings, te1: nn.Module, te2: nn.Module, tokenizer, images: np.ndarray,
               scenes: list[dict], ckpt_path: Path, seed: int, tags_fraction: float,
               progress: Progress | None = None) -> ImageTower:
    """Train both text encoders (in place) and an image tower contrastively; resumable through `ckpt_path`."""
    dim = te2.config.projection_dim
    torch.manual_seed(seed + 5)
    tower = ImageTower(dim, settings.width, images.shape[1])
    towers = TextTowers(te1, te2, dim)
    log_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
    params = [*tower.parameters(), *towers.parameters(), log_scale]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.1)
    start, losses = 0, []
    state = load_checkpoint(ckpt_path)
    if state is not None:
        tower.load_state_dict(state["image"])
        towers.load_state_dict(state["text"])
        log_scale.data.copy_(state["log_scale"])
        opt.load_state_dict(state["opt"])
        start, losses = state["step"], list(state["losses"])
    timer = SaveTimer(settings.checkpoint_seconds, settings.checkpoint_steps)

    def save(step: int) -> None:
        save_checkpoint(ckpt_path, {"image": tower.state_dict(), "text": towers.state_dict(), "opt": opt.state_dict(),
                                    "log_scale": log_scale.data, "step": step, "losses": losses})

    for step in range(start, settings.steps):
        g = torch.Generator().manual_seed(seed * 1_000_003 + 23 + step)
        idx = torch.randperm(len(images), generator=g)[: settings.batch].tolist()
        batch_scenes = [scenes[i] for i in idx]
        seeds = [seed * 1_000_003 + 31 * step + j for j in range(len(idx))]
        pos, neg = caption_batch(batch_scenes, seeds, settings.negatives, tags_fraction)
        x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W)
        img = tower(x)
        ids = _ids(tokenizer, pos + [t for row in neg for t in row])
        t1, t2 = towers(ids)  # (B + B*K, D) each
        b, k = len(idx), settings.negatives
        scale = log_scale.exp().clamp(max=100.0)
        loss = sum(clip_loss(img, t[:b], t[b:].reshape(b, k, -1), scale) for t in (t1, t2)) / 2
        optimizer_step(opt, loss, params, cosine_lr(step, settings.steps, settings.lr, settings.warmup))
        losses.append(loss.item())
        if progress:
            progress("clip", step + 1, settings.steps, float(np.mean(losses[-50:])))
        if timer.due(step + 1):
            save(step + 1)
    save(settings.steps)
    return tower


@torch.no_grad()
def clip_accuracy(tower: ImageTower, te1: nn.Module, te2: nn.Module, tokenizer, images: np.ndarray,
                  scenes: list[dict], seed: int = 1234, n: int = 256) -> dict[str, float]:
    """Held-out figures: image->text retrieval top-1 among n, and the rate at which each image scores its true
    caption above a hard negative, per perturbation kind (text_encoder_2's embedding; 0.5 is chance)."""
    rng = random.Random(seed)
    idx = rng.sample(range(len(images)), min(n, len(images)))
    x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    img = tower(x)
    pos = [training_caption(scenes[i], random.Random(seed + i), 0.0) for i in idx]
    txt = F.normalize(te2(_ids(tokenizer, pos)).text_embeds, dim=-1)
    sims = img @ txt.T
    out = {"retrieval_top1": float((sims.argmax(dim=1) == torch.arange(len(idx))).float().mean())}
    for kind in PERTURBATIONS:
        wins = []
        for row, i in enumerate(idx):
            other = perturb(scenes[i], kind, random.Random(seed + 7 * i))
            if other is None:
                continue
            text = training_caption(other, random.Random(seed + i), 0.0)
            t = F.normalize(te2(_ids(tokenizer, [text])).text_embeds, dim=-1)[0]
            wins.append(float(sims[row, row] > img[row] @ t))
        out[kind] = float(np.mean(wins)) if wins else float("nan")
    return out


# ---------------------------------------------------------------------------- shapes-xl's clip stage

def stage_clip(cfg: ShapesXLConfig, work: Path, tokenizer, images: np.ndarray, scenes: list[dict],
               progress: Progress | None = None):
    """shapes-xl's clip stage: both text encoders pre-trained contrastively (`train_clip`), init_from's, or None
    when clip_steps is 0.

    Writes work/clip/{text_encoder,text_encoder_2} (diffusers layout), image_tower.safetensors and
    figures.json (held-out retrieval and hard-negative accuracy); later runs load them.
    """
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from t2i.train.shapes_xl_models import build_text_encoders

    if cfg.init_from:
        init = Path(cfg.init_from)
        te1, te2 = build_text_encoders(cfg, tokenizer)
        for module, name in ((te1, "text_encoder"), (te2, "text_encoder_2")):
            loaded = (CLIPTextModel if name == "text_encoder" else CLIPTextModelWithProjection).from_pretrained(
                init / name, torch_dtype=torch.float32)
            module.load_state_dict(loaded.state_dict())  # strict: text_hidden / text_layers must match
        return te1, te2
    if cfg.clip_steps <= 0:
        return None
    final = work / "clip"
    if (final / "figures.json").exists():
        return (CLIPTextModel.from_pretrained(final / "text_encoder"),
                CLIPTextModelWithProjection.from_pretrained(final / "text_encoder_2"))
    torch.manual_seed(cfg.seed + 1)
    te1, te2 = build_text_encoders(cfg, tokenizer)
    settings = ClipSettings(steps=cfg.clip_steps, batch=cfg.clip_batch, lr=cfg.clip_lr, negatives=cfg.clip_negatives,
                            checkpoint_seconds=cfg.checkpoint_seconds, checkpoint_steps=cfg.checkpoint_steps)
    tower = train_clip(settings, te1, te2, tokenizer, images, scenes, work / "clip.ckpt", cfg.seed,
                       cfg.tags_fraction, progress)
    tower.eval()
    figures = clip_accuracy(tower, te1.eval(), te2.eval(), tokenizer, images, scenes)
    te1.save_pretrained(final / "text_encoder")
    te2.save_pretrained(final / "text_encoder_2")
    save_file(tower.state_dict(), str(final / "image_tower.safetensors"))
    (final / "figures.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    (work / "clip.ckpt").unlink(missing_ok=True)
    return te1, te2
