#!/usr/bin/env python3
"""Write a seeded, randomly initialised tiny Llama-style model as a traced
TorchScript archive, plus an example input (token ids) as a .npy file.

    /usr/bin/python3 examples/tiny_llama/make_model.py OUT_DIR [--seq-len 16] [--seed 0]

writes OUT_DIR/tiny_llama.pt and OUT_DIR/input.npy (int64 [1, seq_len]) and prints
both paths. The model definition lives in model.py next to this script.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import LlamaConfig, build_llama, example_tokens  # noqa: E402

# The demo configuration: small enough to compile and run in well under a second,
# big enough to exercise every piece of the architecture.
DEMO_CONFIG = LlamaConfig(vocab_size=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                          hidden_dim=176, norm_eps=1e-5, rope_theta=10000.0)


def write_model(out_dir: str, seq_len: int = 16, seed: int = 0, cfg: LlamaConfig = DEMO_CONFIG):
    """Traces the model at `seq_len` and saves it; returns (model_path, input_path)."""
    os.makedirs(out_dir, exist_ok=True)
    model = build_llama(cfg, seed=seed)
    tokens = example_tokens(cfg, seq_len, seed=seed + 1)
    with torch.no_grad():
        traced = torch.jit.trace(model, (tokens,))
    model_path = os.path.join(out_dir, "tiny_llama.pt")
    input_path = os.path.join(out_dir, "input.npy")
    traced.save(model_path)
    np.save(input_path, tokens.numpy())
    return model_path, input_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="directory for tiny_llama.pt and input.npy")
    parser.add_argument("--seq-len", type=int, default=16, help="example input length (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    args = parser.parse_args(argv)
    if args.seq_len < 1:
        parser.error("--seq-len must be >= 1")
    model_path, input_path = write_model(args.out_dir, args.seq_len, args.seed)
    print(model_path)
    print(input_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
