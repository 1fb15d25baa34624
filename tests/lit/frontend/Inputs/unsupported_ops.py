"""A traced model with operators Kiln does not support (FFT, cumsum): the
front end must report every one with its Python line and fail.
usage: unsupported_ops.py OUT.pt"""
import sys

import torch


class Unsupported(torch.nn.Module):
    def forward(self, x):
        spectrum = torch.fft.rfft(x).abs()
        running = torch.cumsum(x, dim=-1)
        return spectrum.sum() + running.sum()


torch.jit.trace(Unsupported(), torch.randn(4, 8)).save(sys.argv[1])
