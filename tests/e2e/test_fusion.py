"""kiln-fuse end to end: the Llama-style decoder compiled by `kiln compile` holds the
fused ops (rms_norm, swiglu, rope, attention) in exactly the numbers its architecture
implies, none of the pieces they replace are left, and the fused program stays within
1e-4 of eager PyTorch, with and without static input shapes, at several lengths.
The GPT-2-style model (LayerNorm, GELU, a causal mask from a sliced buffer) stays
within 1e-4 too; with static shapes its constant mask is recognised as causal.
"""
import os

import numpy as np
import pytest
import torch

import harness
import models

N_LAYERS = models.LlamaConfig().n_layers
N_GPT2_LAYERS = models.GPT2Config().n_layer

# What kiln-fuse must form in the Llama model: two norms per block and the final
# one, one SwiGLU and one attention per block, RoPE on q and on k of each block.
LLAMA_FUSED = {"rms_norm": 2 * N_LAYERS + 1, "swiglu": N_LAYERS, "rope": 2 * N_LAYERS,
               "attention": N_LAYERS}
# Ops whose every use in the Llama model is inside one of the fused patterns.
LLAMA_REPLACED = ("matmul", "softmax", "repeat_interleave", "triangular", "where", "slice",
                  "reduce", "full")

LENGTHS = ((6, 1), (1, 1), (9, 2), (3, 3))


def op_counts(program: str) -> dict:
    methods = harness.inspect_json(program)["methods"]
    assert list(methods) == ["forward"], f"{program}: methods {list(methods)}"
    return methods["forward"]["ops"]


def compile_with(label, pt, out, extra):
    proc = harness.compile_model(pt, out, extra=extra)
    assert proc.returncode == 0, f"[{label}] kiln compile {' '.join(extra)} failed\n" \
                                 f"{harness.describe(proc)}"
    return out


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("fusion_llama"))
    model = models.make_llama()
    pt = os.path.join(workdir, "llama.pt")
    harness.trace(model, [models.llama_tokens(6)]).save(pt)
    return model, pt, workdir


@pytest.mark.parametrize("static", [False, True], ids=["unranked", "static"])
def test_llama_fused_op_counts(llama, static):
    _, pt, workdir = llama
    shape = ["--input-shape", "1x6:i64"] if static else []
    tag = "static" if static else "unranked"
    fused = compile_with("llama fused", pt, os.path.join(workdir, f"fused-{tag}.kiln"), shape)
    unfused = compile_with("llama --no-fuse", pt, os.path.join(workdir, f"unfused-{tag}.kiln"),
                           shape + ["--no-fuse"])
    after, before = op_counts(fused), op_counts(unfused)
    for op, expected in LLAMA_FUSED.items():
        assert after.get(op, 0) == expected, (
            f"[llama {tag}] fused program has {after.get(op, 0)} {op} ops, expected {expected} "
            f"(ops: {after})")
        assert before.get(op, 0) == 0, f"[llama {tag}] --no-fuse program has {op}: {before}"
    left = {op: after[op] for op in LLAMA_REPLACED if op in after}
    assert not left, f"[llama {tag}] pieces left unfused: {left} (ops: {after})"
    # The pieces are there without fusion (the mask ops may fold to a constant).
    for op in ("matmul", "softmax", "repeat_interleave", "reduce", "where", "slice"):
        assert before.get(op, 0) > 0, f"[llama {tag}] the unfused program lacks {op}: {before}"
    assert sum(after.values()) < sum(before.values()), (
        f"[llama {tag}] fusion did not reduce the op count: {sum(before.values())} -> "
        f"{sum(after.values())}")


@pytest.mark.parametrize("static", [False, True], ids=["unranked", "static"])
def test_llama_fused_matches_eager(llama, static):
    model, pt, workdir = llama
    tag = "static" if static else "unranked"
    lengths = ((6, 1),) if static else LENGTHS
    extra = ["--input-shape", "1x6:i64"] if static else []
    program = compile_with("llama fused", pt, os.path.join(workdir, f"run-{tag}.kiln"), extra)
    for seq_len, batch in lengths:
        inputs = [models.llama_tokens(seq_len, batch, seed=seq_len)]
        outs = harness.run_ok(f"llama {tag} T={seq_len} B={batch}", program, inputs,
                              os.path.join(workdir, f"run-{tag}-{seq_len}-{batch}"))
        harness.assert_outputs_match(f"llama fused {tag} T={seq_len} B={batch}", outs,
                                     harness.eager(model, inputs))


@pytest.mark.parametrize("static", [False, True], ids=["unranked", "static"])
def test_gpt2_matches_eager_with_fusion(tmp_path, static):
    model = models.make_gpt2()
    pt = str(tmp_path / "gpt2.pt")
    harness.trace(model, [models.gpt2_tokens(5)]).save(pt)
    extra = ["--input-shape", "1x5:i64"] if static else []
    program = compile_with("gpt2", pt, str(tmp_path / "gpt2.kiln"), extra)
    counts = op_counts(program)
    # Static: the sliced tril buffer folds to a constant causal mask -> attention.
    # Unranked: the mask is a slice of a buffer; it is left alone.
    expected = N_GPT2_LAYERS if static else 0
    assert counts.get("attention", 0) == expected, f"[gpt2 {static}] ops: {counts}"
    assert counts.get("rms_norm", 0) == 0 and counts.get("swiglu", 0) == 0, counts
    if not static:
        # q @ k.transpose(-2, -1) of each block reads k transposed in the matmul.
        unfused = op_counts(compile_with("gpt2 --no-fuse", pt, str(tmp_path / "gpt2-nf.kiln"),
                                         ["--no-fuse"]))
        assert counts.get("transpose", 0) == unfused.get("transpose", 0) - N_GPT2_LAYERS, (
            f"[gpt2] transposes: fused {counts.get('transpose', 0)}, unfused "
            f"{unfused.get('transpose', 0)}, expected {N_GPT2_LAYERS} folded into matmul")
    lengths = ((5, 1),) if static else ((5, 1), (1, 1), (8, 2))
    for seq_len, batch in lengths:
        inputs = [models.gpt2_tokens(seq_len, batch, seed=seq_len)]
        outs = harness.run_ok(f"gpt2 T={seq_len}", program, inputs,
                              str(tmp_path / f"run-{seq_len}-{batch}"))
        harness.assert_outputs_match(f"gpt2 fused static={static} T={seq_len} B={batch}", outs,
                                     harness.eager(model, inputs))


def test_no_fuse_flag_in_help():
    proc = harness.run_tool([harness.binary("kiln"), "compile", "--help"])
    assert "--no-fuse" in proc.stdout + proc.stderr, harness.describe(proc)


class InterleavedRope(torch.nn.Module):
    """GPT-J style rotary embedding (pairs rotated), tables from the positions."""

    def forward(self, x):
        t, d = x.size(2), x.size(3)
        inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        freqs = torch.outer(torch.arange(t, dtype=torch.float32), inv)
        cos = freqs.cos().repeat_interleave(2, dim=-1)
        sin = freqs.sin().repeat_interleave(2, dim=-1)
        x1 = x[..., ::2]
        x2 = x[..., 1::2]
        rotated = torch.stack((-x2, x1), dim=-1).flatten(-2)
        return x * cos + rotated * sin


def test_interleaved_rope_fused_and_matches_eager(tmp_path):
    model = InterleavedRope()
    rng = np.random.default_rng(0)
    example = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
    pt = str(tmp_path / "rope.pt")
    harness.trace(model, [example]).save(pt)
    # Static: x is known 4-d, so the slices on dim 3 are on its last dim -> fused.
    static = compile_with("interleaved rope static", pt, str(tmp_path / "rope-static.kiln"),
                          ["--input-shape", "1x2x5x8"])
    counts = op_counts(static)
    assert counts.get("rope", 0) == 1 and "stack" not in counts and "flatten" not in counts, (
        f"[interleaved rope static] ops: {counts}")
    outs = harness.run_ok("interleaved rope static", static, [example], str(tmp_path / "static"))
    harness.assert_outputs_match("interleaved rope static x [1,2,5,8]", outs,
                                 harness.eager(model, [example]))
    # Unranked: dim 3 need not be the last dim of an input of unknown rank -> left alone.
    unranked = compile_with("interleaved rope", pt, str(tmp_path / "rope.kiln"), [])
    assert op_counts(unranked).get("rope", 0) == 0, op_counts(unranked)
    for shape in ((1, 2, 5, 8), (2, 3, 4, 6)):
        inputs = [rng.standard_normal(shape).astype(np.float32)]
        outs = harness.run_ok(f"interleaved rope {shape}", unranked, inputs,
                              str(tmp_path / f"run-{len(shape)}-{shape[-1]}"))
        harness.assert_outputs_match(f"interleaved rope x {list(shape)}", outs,
                                     harness.eager(model, inputs))
