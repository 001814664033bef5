"""A tiny random LlamaForCausalLM with our byte-level tokenizer, saved as a transformers folder."""

from pathlib import Path

CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def make_tiny_llama(folder: Path, seed: int = 0, chat: bool = True, quantised: bool = False) -> Path:
    import json

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from t2i.train.lm_tokenizer import TIPO_SPECIAL_TOKENS, build_bpe_tokenizer

    texts = ["target: <|long|>\ntag: red circle, blue square, gray background",
             "a photo of a red circle above a blue square. The background is gray."] * 20
    tok = build_bpe_tokenizer(texts, vocab_size=300, special=TIPO_SPECIAL_TOKENS, model_max_length=128,
                              chat_template=CHAT if chat else None)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    if quantised:
        path = Path(folder) / "config.json"
        data = json.loads(path.read_text())
        data["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
        path.write_text(json.dumps(data))
    return Path(folder)
