"""Byte-level BPE tokenizers for our small language models (tipo-tiny, omost-tiny).

Byte-level, so any input (other languages, emoji, typos) tokenizes without an unknown token and decodes
back exactly; LLaMA's conventions for the rest: BOS `<s>` added in front, EOS `</s>`, pad = EOS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BOS, EOS = "<s>", "</s>"

# TIPO's 13 added tokens, in the order of the released TIPO models' tokenizer (KBlueLeaf/TIPO-*).
TIPO_SPECIAL_TOKENS = (
    "<|empty|>", "<|very_short|>", "<|short|>", "<|long|>", "<|very_long|>",
    "<|tag_to_long|>", "<|long_to_tag|>", "<|short_to_tag|>", "<|short_to_long|>",
    "<|tag_to_short_to_long|>", "<|short_to_tag_to_long|>", "<|short_to_long_to_tag|>", "<|gen_meta|>",
)


def build_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024, special: Sequence[str] = (),
                        model_max_length: int = 1024, chat_template: str | None = None):
    """Train a byte-level BPE on `texts`; returns a transformers PreTrainedTokenizerFast."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    bos = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=EOS,
                                   model_max_length=model_max_length, clean_up_tokenization_spaces=False)
    if special:
        fast.add_special_tokens({"additional_special_tokens": list(special)})
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast
