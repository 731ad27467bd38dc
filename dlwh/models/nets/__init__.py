"""The zoo's networks in plain PyTorch (importing any module here imports torch)."""
