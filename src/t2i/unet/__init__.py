"""U-Net surgery on SDXL-family U-Nets: KOALA's students (`student`: fewer blocks, weights copied from the
teacher's kept ones; Lee et al. 2023) and the reverse, growing a U-Net deeper without changing what it
computes (`grow`: Net2Net, Chen et al. 2016)."""
