"""Seeded random checkpoints in the published Hugging Face layout, for tests and scripts.

    from kiln.models.testing import write_random_checkpoint
    write_random_checkpoint(dirpath, build_config("125M"), seed=0, fmt="safetensors")

Layouts: `fmt="safetensors"` -> model.safetensors; `fmt="bin"` -> pytorch_model.bin
(torch pickle); `shards=N` (N >= 2) -> model-0000k-of-0000N.safetensors (or
pytorch_model-0000k-of-0000N.bin) plus model.safetensors.index.json
(pytorch_model.bin.index.json) with the usual {"metadata", "weight_map"}.
Weights are stored in the config's `torch_dtype` (float16/bfloat16/float32) unless
`dtype` is given; lm_head.weight is written only when embeddings are not shared.
"""
import json
import os

import torch

from kiln.checkpoint import write_safetensors
from kiln.models.mobilellm import init_random

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def checkpoint_dtype(config):
    return _DTYPES.get(config.get("torch_dtype", "float32"), torch.float32)


def write_checkpoint(dirpath, config, state, fmt="safetensors", shards=1, dtype=None):
    """Write config.json and `state` ({name: tensor}) as a checkpoint directory."""
    if fmt not in ("safetensors", "bin"):
        raise ValueError(f"fmt must be 'safetensors' or 'bin', got {fmt!r}")
    dtype = dtype or checkpoint_dtype(config)
    os.makedirs(dirpath, exist_ok=True)
    with open(os.path.join(dirpath, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    state = {k: v.detach().to(dtype).contiguous() for k, v in state.items()}

    def save(path, tensors):
        if fmt == "safetensors":
            write_safetensors(path, tensors, metadata={"format": "pt"})
        else:
            torch.save(tensors, path)

    if shards <= 1:
        save(os.path.join(dirpath, "model.safetensors" if fmt == "safetensors"
                          else "pytorch_model.bin"), state)
        return dirpath
    # Split in the state's (layer) order into `shards` groups of about equal bytes.
    names = list(state)
    total = sum(t.numel() * t.element_size() for t in state.values())
    groups, cur, acc = [], [], 0
    for n in names:
        cur.append(n)
        acc += state[n].numel() * state[n].element_size()
        if acc >= total * (len(groups) + 1) / shards and len(groups) < shards - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    groups = [g for g in groups if g]
    k = len(groups)
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    weight_map = {}
    for i, g in enumerate(groups):
        fname = f"{stem}-{i + 1:05d}-of-{k:05d}.{ext}"
        save(os.path.join(dirpath, fname), {n: state[n] for n in g})
        for n in g:
            weight_map[n] = fname
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(dirpath, f"{stem}.{ext}.index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)
    return dirpath


def write_random_checkpoint(dirpath, config, seed=0, fmt="safetensors", shards=1, dtype=None):
    """Seeded random weights (init_random) for `config`, written in the published layout.
    Returns the float32 model the checkpoint was made from (before 16-bit rounding)."""
    model = init_random(config, seed)
    write_checkpoint(dirpath, config, model.state_dict(), fmt=fmt, shards=shards, dtype=dtype)
    return model
