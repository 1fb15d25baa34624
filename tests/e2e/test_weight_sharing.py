"""Weight sharing stays compact (issue 4): a decoder whose 4 blocks each run
twice in a row with the same weights (MobileLLM-LS style) compiles to a program
within 2% of the same decoder with its 4 blocks run once, and a weight that is
stored twice with identical bytes (a tied embedding/head given as two
parameters, or a copy) is stored once. Outputs stay within 1e-4 of eager.
"""
import copy
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import harness

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "examples", "tiny_llama"))
from model import Llama, LlamaConfig, build_llama, example_tokens  # noqa: E402

CFG = LlamaConfig(vocab_size=512, dim=128, n_layers=4, n_heads=4, n_kv_heads=2, hidden_dim=256)
SEQ_LEN = 16


class SharedBlocksLlama(Llama):
    """Each block runs twice in a row on its own output (A, A, B, B, ...)."""

    def forward(self, tokens):
        h = self.embed(tokens)
        cos, sin = self.rope(tokens)
        for layer in self.layers:
            h = layer(h, cos, sin)
            h = layer(h, cos, sin)
        h = self.norm(h)
        return F.linear(h, self.embed.weight)


class UntiedCopyLlama(Llama):
    """The output head is a separate parameter holding a copy of the embedding."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.head = torch.nn.Parameter(torch.empty(cfg.vocab_size, cfg.dim))

    def forward(self, tokens):
        h = self.embed(tokens)
        cos, sin = self.rope(tokens)
        for layer in self.layers:
            h = layer(h, cos, sin)
        h = self.norm(h)
        return F.linear(h, self.head)


def _compile(tmp_path, name, module, tokens, extra=()):
    pt = str(tmp_path / f"{name}.pt")
    harness.trace(module, [tokens]).save(pt)
    out = str(tmp_path / f"{name}.kiln")
    proc = harness.compile_model(pt, out, extra=["--input-shape", f"1x{SEQ_LEN}:i64", *extra])
    assert proc.returncode == 0, f"[{name}] kiln compile failed\n{harness.describe(proc)}"
    return out


def _check_parity(tmp_path, name, program, module, tokens):
    outs = harness.run_ok(name, program, [tokens], str(tmp_path / f"run_{name}"))
    refs = harness.eager(module, [tokens])
    harness.assert_outputs_match(name, outs, refs, 1e-4)


def _unique_weight_bytes(module):
    seen, total = [], 0
    for p in module.state_dict().values():
        if p.dtype != torch.float32 or p.dim() < 1:
            continue
        if any(p.shape == q.shape and torch.equal(p, q) for q in seen):
            continue
        seen.append(p)
        total += p.numel() * 4
    return total


def test_blocks_run_twice_store_their_weights_once(tmp_path):
    tokens = example_tokens(CFG, SEQ_LEN).numpy()
    plain = build_llama(CFG, seed=0)
    shared = SharedBlocksLlama(CFG).eval()
    shared.load_state_dict(plain.state_dict())

    plain_kiln = _compile(tmp_path, "plain", plain, tokens)
    shared_kiln = _compile(tmp_path, "shared", shared, tokens)
    plain_size = os.path.getsize(plain_kiln)
    shared_size = os.path.getsize(shared_kiln)
    ratio = shared_size / plain_size
    print(f"4 blocks once: {plain_size} bytes; each block twice: {shared_size} bytes; ratio {ratio:.4f}")
    assert ratio <= 1.02, (
        f"blocks run twice: program {shared_size} bytes is {ratio:.4f}x the unshared one "
        f"({plain_size} bytes); limit 1.02x")
    info = harness.inspect_json(shared_kiln)
    assert info["constant_bytes"] == harness.inspect_json(plain_kiln)["constant_bytes"]
    # The size breakdown adds up: sections to the file, layers to the constants,
    # and each of the 4 stored blocks is one layer entry.
    assert sum(info["sections"].values()) == info["file_bytes"] == shared_size, info["sections"]
    by_layer = info["constant_bytes_by_layer"]
    assert sum(by_layer.values()) == info["constant_bytes"], by_layer
    assert sorted(k for k in by_layer if k.startswith("layers.")) == [f"layers.{i}" for i in range(4)], by_layer
    _check_parity(tmp_path, "shared_blocks", shared_kiln, shared, tokens)


def test_identical_weights_are_stored_once(tmp_path):
    tokens = example_tokens(CFG, SEQ_LEN).numpy()
    tied = build_llama(CFG, seed=0)
    untied = UntiedCopyLlama(CFG).eval()
    state = copy.deepcopy(tied.state_dict())
    state["head"] = state["embed.weight"].clone()
    untied.load_state_dict(state)

    for dedup in ([], ["--no-dedup-weights"]):
        program = _compile(tmp_path, "untied" + ("_nodedup" if dedup else ""), untied, tokens,
                           extra=dedup)
        info = harness.inspect_json(program)
        unique = _unique_weight_bytes(tied)
        # Everything else stored (norm weights are in the state dict; small
        # constants such as masks or RoPE tables are a few KB at most).
        assert unique <= info["constant_bytes"] < unique + CFG.vocab_size * CFG.dim * 4 // 4, (
            f"untied copy of the embedding ({'no dedup pass' if dedup else 'dedup pass'}): "
            f"constant_bytes {info['constant_bytes']} but the unique weights are {unique} bytes; "
            f"the {CFG.vocab_size}x{CFG.dim} head copy must be stored once")
    _check_parity(tmp_path, "untied_copy", program, untied, tokens)
