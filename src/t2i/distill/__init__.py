"""KOALA's method (Lee et al. 2023): compress an SDXL-family U-Net and distil it from its teacher, matching
the teacher's self-attention features."""
