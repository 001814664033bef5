"""A word-level CLIP tokenizer for the tiny models: every known word is one BPE token.

CLIPTokenizer is byte-pair encoding over lower-cased words (the last symbol of a word carries
`</w>`).  We write a vocab.json/merges.txt pair whose merges build each known word left to right, so a
known word becomes one token, and any other word falls back to single characters (never unknown).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77
_WORD = re.compile(r"[a-z]+|[0-9]|[^\sa-z0-9]")  # CLIP's split, restricted to what captions contain


def words_of(texts: Iterable[str]) -> list[str]:
    """Sorted distinct lower-case words and symbols of `texts`."""
    found: set[str] = set()
    for t in texts:
        found.update(_WORD.findall(t.lower()))
    return sorted(found)


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE on one word: merge the lowest-ranked adjacent pair until none applies."""
    parts = [*word[:-1], word[-1] + "</w>"]
    while len(parts) > 1:
        pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
        best = min(pairs, key=lambda p: ranks.get(p, 1 << 30))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def _chain_merges(order: list[str]) -> list[tuple[str, str]]:
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for w in order:
        left = w[0]
        for k in range(1, len(w)):
            right = w[k] + ("</w>" if k == len(w) - 1 else "")
            if (left, right) not in seen:
                seen.add((left, right))
                merges.append((left, right))
            left = left + right
    return merges


def word_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Merges that make every alphabetic word of `words` (2+ letters) a single BPE token.

    Each word's merges build it left to right; a word whose chain is pre-empted by another word's
    merge is moved to the front and the list rebuilt, until every word comes out whole.
    """
    order = sorted({w for w in words if len(w) > 1 and w.isalpha()}, key=lambda w: (-len(w), w))
    for _ in range(len(order) + 1):
        merges = _chain_merges(order)
        ranks = {m: i for i, m in enumerate(merges)}
        broken = [w for w in order if len(_bpe(w, ranks)) != 1]
        if not broken:
            return merges
        order = broken + [w for w in order if w not in broken]
    raise ValueError(f"could not make these words single tokens: {broken}")


def write_word_tokenizer(words: Iterable[str], out: Path) -> Path:
    """Write vocab.json, merges.txt and tokenizer settings for a CLIPTokenizer into `out`."""
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab: dict[str, int] = {}
    for tok in [*chars, *(c + "</w>" for c in chars)]:
        vocab.setdefault(tok, len(vocab))
    merges = word_merges(words)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab.setdefault(BOS, len(vocab))
    vocab.setdefault(EOS, len(vocab))
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, indent=0), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    settings = {"model_max_length": MAX_LENGTH, "bos_token": BOS, "eos_token": EOS, "unk_token": EOS,
                "pad_token": EOS, "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}
    (out / "tokenizer_config.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}, indent=1),
        encoding="utf-8")
    return out


def load_tokenizer(folder: Path):
    """The CLIPTokenizer stored in `folder` (local files only)."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
