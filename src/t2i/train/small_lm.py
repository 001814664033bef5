"""One recipe for our small language models (tipo-tiny, omost-tiny): documents -> BPE tokenizer ->
LlamaForCausalLM trained with next-token loss -> a transformers folder (float16 safetensors).

Stages resume from the work folder: documents (docs.jsonl), tokenizer, then the training loop with atomic
checkpoints; each step's batch comes from a generator seeded by the step, so a killed and resumed run
equals an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from t2i.train.checkpoint import SaveTimer, claim_work_folder, load_checkpoint, save_checkpoint
from t2i.train.recipe_file import write_recipe
from t2i.train.schedule import cosine_lr
from t2i.train.settings import Progress
from t2i.train.small_lm_config import REMOVED, SmallLMConfig

Documents = Callable[[int, int], list[str]]  # (n, seed) -> documents


def build_model(cfg: SmallLMConfig, tokenizer: Any):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.ffn,
                         num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                         max_position_embeddings=cfg.context, rope_theta=10_000.0, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config)


def encode(tokenizer: Any, docs: Sequence[str], context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Documents -> (N, context) ids (BOS doc EOS, padded with EOS) and (N,) lengths; too long is an error."""
    eos = tokenizer.eos_token_id
    rows = [tokenizer(d).input_ids + [eos] for d in docs]
    longest = max(len(r) for r in rows)
    if longest > context:
        raise ValueError(f"a document is {longest} tokens long; the context is {context}")
    ids = torch.full((len(rows), context), eos, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, torch.tensor([len(r) for r in rows])


def _batch_loss(model: Any, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    width = int(lengths.max())
    x = ids[:, :width]  # (B, T)
    labels = x.clone()
    labels[torch.arange(width)[None, :] >= lengths[:, None]] = -100  # no loss on padding
    return model(input_ids=x, labels=labels).loss


@torch.no_grad()
def validation_loss(model: Any, ids: torch.Tensor, lengths: torch.Tensor, batch: int = 64) -> float:
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(ids), batch):
        total += float(_batch_loss(model, ids[i: i + batch], lengths[i: i + batch])) * len(ids[i: i + batch])
        n += len(ids[i: i + batch])
    model.train()
    return total / max(1, n)


def train_small_lm(cfg: SmallLMConfig, name: str, documents: Documents, special: Sequence[str], work: Path,
                   out: Path, progress: Progress | None = None, stop: Callable[[int], bool] | None = None,
                   files: Mapping[str, str] | None = None, chat_template: str | None = None,
                   command: str | None = None) -> Path | None:
    """Train and export; returns the exported folder, or None when `stop(step)` asked to stop.

    `files`: extra text files written into the exported folder (e.g. presample.json); `command`: the command
    line recorded in RECIPE.json (this process's when None).
    """
    from t2i.train.lm_tokenizer import build_bpe_tokenizer

    torch.set_num_threads(cfg.threads)
    claim_work_folder(work, {"model": name, **asdict(cfg)}, {"steps"}, {"threads", "checkpoint_seconds"},
                      removed=REMOVED)
    docs_path = work / "docs.jsonl"
    if not docs_path.exists():
        docs = documents(cfg.n_docs, cfg.seed)
        tmp = docs_path.with_suffix(".tmp")
        tmp.write_text("\n".join(json.dumps(d) for d in docs), encoding="utf-8")
        tmp.replace(docs_path)
    docs = [json.loads(line) for line in docs_path.read_text(encoding="utf-8").splitlines()]
    held_out = documents(cfg.n_eval, cfg.seed + 1)
    tok_dir = work / "tokenizer"
    from transformers import AutoTokenizer

    if not (tok_dir / "tokenizer.json").exists():
        if cfg.init:  # fine-tuning keeps the starting model's tokenizer
            AutoTokenizer.from_pretrained(cfg.init).save_pretrained(tok_dir)
        else:
            build_bpe_tokenizer(docs, cfg.vocab_size, special, cfg.context, chat_template).save_pretrained(tok_dir)

    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    ids, lengths = encode(tokenizer, docs, cfg.context)
    eval_ids, eval_lengths = encode(tokenizer, held_out, cfg.context)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, tokenizer)
    if cfg.init:
        from transformers import LlamaForCausalLM

        start_from = LlamaForCausalLM.from_pretrained(cfg.init, torch_dtype=torch.float32)
        model.load_state_dict(start_from.state_dict())  # strict: the settings must describe the same model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    ckpt = work / "lm.ckpt"
    start, losses = 0, []
    state = load_checkpoint(ckpt)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, losses = state["step"], list(state["losses"])
        if start > cfg.steps:
            raise ValueError(f"{ckpt} is at step {start}, beyond steps={cfg.steps}")

    def save(step: int) -> None:
        save_checkpoint(ckpt, {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                               "losses": losses})

    model.train()
    timer = SaveTimer(cfg.checkpoint_seconds)
    for step in range(start, cfg.steps):
        if stop is not None and stop(step):
            return None
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 17 + step)
        idx = torch.randint(len(ids), (cfg.batch,), generator=g)
        loss = _batch_loss(model, ids[idx], lengths[idx])
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup, floor=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if progress:
            progress(name, step + 1, cfg.steps, sum(losses[-50:]) / len(losses[-50:]))
        if timer.due(step + 1):
            save(step + 1)
    save(cfg.steps)
    figures = {"train_loss_mean_last_50": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
               "validation_loss": round(validation_loss(model, eval_ids, eval_lengths), 4),
               "parameters": sum(p.numel() for p in model.parameters())}
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    for fname, text in (files or {}).items():
        (out / fname).write_text(text, encoding="utf-8")
    write_recipe(out, name, asdict(cfg), figures, command)
    return out
