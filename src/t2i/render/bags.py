"""Greedy sub-prompt bags (Omost's "prompt prefix tree"), pure logic.

Every bag is the region's prefix (global description -> local description) followed by as many
suffix sub-prompts as fit, in order (next-fit packing): each bag stays within the text encoder's 75
content tokens, so no sub-prompt is ever cut in the middle of its meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

CONTENT_TOKENS = 75  # 77 positions minus BOS and EOS


def pack_bags(prefix_len: int, item_lens: Sequence[int], limit: int = CONTENT_TOKENS) -> list[list[int]]:
    """Next-fit packing of items (given by token length) into bags of at most `limit - prefix_len` tokens.

    Returns lists of item indices, in order; an item longer than the budget gets a bag of its own (it is
    cut to the limit when the bag is encoded).  No items -> one empty bag (the prefix alone).
    """
    if prefix_len < 0 or limit <= 0 or any(n < 0 for n in item_lens):
        raise ValueError("lengths must be non-negative and the limit positive")
    budget = max(0, limit - prefix_len)
    bags: list[list[int]] = [[]]
    used = 0
    for i, n in enumerate(item_lens):
        if bags[-1] and used + n > budget:
            bags.append([])
            used = 0
        bags[-1].append(i)
        used += n
    return bags


def bag_token_ids(prefixes: Sequence[str], suffixes: Sequence[str], tokenize: Callable[[str], list[int]],
                  bos: int, eos: int, pad: int, limit: int = CONTENT_TOKENS) -> list[list[int]]:
    """Token ids of each bag: [BOS] + prefix + items (cut to `limit`) + [EOS] + padding to limit + 2.

    `tokenize(text)` gives ids without special tokens.
    """
    prefix = [t for p in prefixes for t in tokenize(p)]
    items = [tokenize(s)[:limit] for s in suffixes]
    out = []
    for bag in pack_bags(len(prefix), [len(x) for x in items], limit):
        content = (prefix + [t for i in bag for t in items[i]])[:limit]
        ids = [bos, *content, eos]
        out.append(ids + [pad] * (limit + 2 - len(ids)))
    return out
