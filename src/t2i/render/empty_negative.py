"""The empty caption as the negative branch of classifier-free guidance for the first steps of sampling.

An SDXL-family model trained with its conditioning dropped to zeros (SDXL's `force_zeros_for_empty_prompt`)
guides against the zero embedding: "any image".  Our shapes-world models also learnt what the *empty
caption* means without ever being shown one: a caption naming nothing draws nothing (shapes-xl v9, 64
seeds of the prompt "": 47 empty images).  Guiding away from it in the first steps, where the layout is
decided, stops images of a single uncoloured object from staying empty (v9, "a photo of a circle", 64 seeds:
6 empty with the zero negative, 0 with the empty caption's); kept for the whole run it also pushes colours
and counts off (suite overall 0.667 against 0.714), so after those steps the zero negative takes over.

Option `empty_negative=F` of the SDXL backend: the first round(F x steps) steps.  It applies to plain prompts
without a negative prompt (a negative prompt is its own negative branch); Canvas regions and AND prompts keep
the zero negative.  Steps are switched through diffusers' `callback_on_step_end`, which may replace the
pipeline's `prompt_embeds` and `add_text_embeds` (negative half first, as the pipeline concatenates them).
"""

from __future__ import annotations

from typing import Any


def empty_negative_steps(fraction: float, steps: int) -> int:
    """How many of `steps` sampling steps guide against the empty caption (fraction in [0, 1])."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"empty_negative is a fraction of the steps, in [0, 1]; got {fraction}")
    return round(fraction * steps)


def empty_caption_embeds(pipe: Any, prompt: str, n: int) -> dict[str, Any]:
    """Keyword arguments for an SDXL pipeline call: `prompt`'s embeddings with the empty caption's as the
    negative branch (n images each)."""
    pe, _, pooled, _ = pipe.encode_prompt(prompt, num_images_per_prompt=n, do_classifier_free_guidance=False)
    ne, _, npooled, _ = pipe.encode_prompt("", num_images_per_prompt=n, do_classifier_free_guidance=False)
    return {"prompt_embeds": pe, "pooled_prompt_embeds": pooled,
            "negative_prompt_embeds": ne, "negative_pooled_prompt_embeds": npooled}


def zero_negative_half(kwargs: dict[str, Any], n: int) -> dict[str, Any]:
    """The callback tensors with the negative branch (the first n rows of `prompt_embeds` (2n, 77, D) and
    `add_text_embeds` (2n, P)) set to zeros: from here on the model's trained unconditional."""
    import torch

    out = dict(kwargs)
    for key in ("prompt_embeds", "add_text_embeds"):
        x = kwargs[key]
        out[key] = torch.cat([torch.zeros_like(x[:n]), x[n:]])
    return out
