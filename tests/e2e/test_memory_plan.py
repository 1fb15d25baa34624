"""kiln-plan-memory end to end: the plan of a real 8-block Llama-style decoder
(compiled with static shapes) checked by an independent checker, its figures in
`kiln inspect`, and parity with eager PyTorch / a float64 reference when the
runtime binds the planned values to the arena (and without a plan).
"""
import os
import re

import numpy as np
import pytest
import torch

import harness
import models
from harness import TOLERANCE, binary, describe, inspect_json, run_ok, run_tool
from memory_plan_check import (check_plan, llama_decoder_mlir, llama_decoder_reference,
                               parse_generic)

SEQ = 16
# At most 10% above the lower bound, and far below one buffer per value.
MAX_OVER_LOWER_BOUND = 1.10
MIN_NAIVE_OVER_ARENA = 10


def plan_figures_ok(label: str, func: dict):
    """Runs the checker on one parsed function and checks its figures."""
    arena, lower, naive = check_plan(func)
    assert func["arena_lower_bound_bytes"] == lower, (
        f"[{label}] the pass records lower bound {func['arena_lower_bound_bytes']}, "
        f"the checker computes {lower}")
    assert func["naive_bytes"] == naive, (
        f"[{label}] the pass records naive {func['naive_bytes']}, the checker computes {naive}")
    assert lower <= arena <= MAX_OVER_LOWER_BOUND * lower, (
        f"[{label}] arena {arena} bytes is not within [lower bound {lower}, "
        f"{MAX_OVER_LOWER_BOUND} x lower bound]")
    assert arena * MIN_NAIVE_OVER_ARENA <= naive, (
        f"[{label}] arena {arena} bytes is not {MIN_NAIVE_OVER_ARENA}x smaller than naive {naive}")
    return arena, lower, naive


def generic_functions(label: str, mlir_path: str):
    proc = run_tool([binary("kiln-opt"), mlir_path, "--mlir-print-op-generic"])
    assert proc.returncode == 0, f"[{label}] kiln-opt --mlir-print-op-generic failed\n{describe(proc)}"
    funcs = parse_generic(proc.stdout)
    assert funcs, f"[{label}] no function in the generic print"
    return funcs


@pytest.fixture(scope="module")
def llama8(tmp_path_factory):
    """The Llama-style decoder of tests/e2e/models.py with 8 blocks, traced."""
    workdir = str(tmp_path_factory.mktemp("memory_plan_llama8"))
    cfg = models.LlamaConfig(n_layers=8)
    model = models.tiny_llama.build_llama(cfg, seed=0).eval()
    tokens = models.tiny_llama.example_tokens(cfg, SEQ, 1, 1).numpy()
    pt = os.path.join(workdir, "llama8.pt")
    harness.trace(model, [tokens]).save(pt)
    with torch.no_grad():
        expected = model(torch.from_numpy(tokens)).numpy()
    return pt, tokens, expected, workdir


def compile_static(label, pt, out, extra=()):
    args = [binary("kiln"), "compile", pt, "-o", out, "--input-shape", f"1x{SEQ}:i64", "-q"]
    proc = run_tool(args + list(extra))
    assert proc.returncode == 0, f"[{label}] kiln compile failed\n{describe(proc)}"
    return out


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_llama8_plan_is_sound_and_tight(llama8, fuse):
    pt, _, _, workdir = llama8
    tag = "fused" if fuse else "unfused"
    label = f"llama 8 blocks {tag}"
    extra = [] if fuse else ["--no-fuse"]
    mlir = compile_static(label, pt, os.path.join(workdir, f"{tag}.mlir"), ["--emit-mlir"] + extra)
    funcs = generic_functions(label, mlir)
    for func in funcs:
        arena, lower, naive = plan_figures_ok(label, func)
        print(f"{label}: arena {arena} bytes, lower bound {lower}, naive {naive}")
    # Every op result of a statically shaped program is planned.
    text = open(mlir).read()
    assert "kiln.arena_offsets = array<i64: -1" not in text and not re.search(
        r"kiln\.arena_offsets = array<i64:[^>]*, -1", text), f"[{label}] a value was left unplanned"


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_llama8_parity_with_the_arena(llama8, fuse):
    pt, tokens, expected, workdir = llama8
    tag = "fused" if fuse else "unfused"
    label = f"llama 8 blocks {tag}"
    extra = [] if fuse else ["--no-fuse"]
    planned = compile_static(label, pt, os.path.join(workdir, f"{tag}.kiln"), extra)
    unplanned = compile_static(label + " --no-plan-memory", pt,
                               os.path.join(workdir, f"{tag}-noplan.kiln"),
                               extra + ["--no-plan-memory"])
    info = inspect_json(planned)["methods"]["forward"]
    assert info["arena_bytes"] > 0 and info["planned_values"] > 0, f"[{label}] no plan: {info}"
    assert info["arena_lower_bound_bytes"] <= info["arena_bytes"] <= (
        MAX_OVER_LOWER_BOUND * info["arena_lower_bound_bytes"]), f"[{label}] inspect: {info}"
    assert info["naive_bytes"] >= MIN_NAIVE_OVER_ARENA * info["arena_bytes"], f"[{label}] {info}"
    none = inspect_json(unplanned)["methods"]["forward"]
    assert (none["arena_bytes"], none["planned_values"]) == (0, 0), (
        f"[{label} --no-plan-memory] inspect shows a plan: {none}")
    human = run_tool([binary("kiln"), "inspect", planned])
    assert (f"memory plan: arena {info['arena_bytes']} bytes (lower bound "
            f"{info['arena_lower_bound_bytes']}, naive {info['naive_bytes']})") in human.stdout, (
        f"[{label}] kiln inspect does not show the plan\n{human.stdout}")

    for tool in ("kiln", "kiln-runtime"):
        got = run_ok(f"{label} {tool}", planned, [tokens], os.path.join(workdir, f"run-{tag}-{tool}"),
                     tool=tool, expected_outputs=1)[0]
        base = run_ok(f"{label} no plan {tool}", unplanned, [tokens],
                      os.path.join(workdir, f"run-{tag}-noplan-{tool}"), tool=tool,
                      expected_outputs=1)[0]
        err = float(np.abs(got - expected).max())
        assert got.shape == expected.shape and err <= TOLERANCE, (
            f"[{label}] {tool} with the memory plan: logits {got.shape} differ from eager "
            f"{expected.shape} by {err} (tolerance {TOLERANCE})")
        assert np.array_equal(got, base), (
            f"[{label}] {tool}: the planned program differs from the unplanned one by "
            f"{float(np.abs(got - base).max())}")


def test_generated_decoder_parity_and_plan(tmp_path):
    """A Llama-style decoder written directly in the kiln dialect (static
    shapes, unfused pieces: slices, concat, where, repeat_interleave, ...), run
    with the plan against a float64 reference and against the unplanned run."""
    workdir = str(tmp_path)
    text, arrays = llama_decoder_mlir(n_layers=8)
    src = os.path.join(workdir, "decoder.mlir")
    open(src, "w").write(text)
    planned_mlir = os.path.join(workdir, "decoder.planned.mlir")
    proc = run_tool([binary("kiln-opt"), src, "--kiln-plan-memory=report", "-o", planned_mlir])
    assert proc.returncode == 0, f"kiln-opt --kiln-plan-memory failed\n{describe(proc)}"
    assert re.search(r"kiln-plan-memory: forward: arena \d+ bytes, lower bound \d+, naive \d+, "
                     r"\d+ values planned, 0 left dynamic, \d+ in place", proc.stderr), proc.stderr
    funcs = generic_functions("generated decoder", planned_mlir)
    plan_figures_ok("generated decoder", funcs[0])

    programs = {}
    for tag, path in (("planned", planned_mlir), ("unplanned", src)):
        out = os.path.join(workdir, f"{tag}.kiln")
        proc = run_tool([binary("kiln-portable-translate"), path, "-o", out])
        assert proc.returncode == 0, f"[{tag}] kiln-portable-translate failed\n{describe(proc)}"
        programs[tag] = out
    ids = np.random.default_rng(3).integers(0, 128, SEQ).astype(np.int64)
    got = run_ok("generated decoder planned", programs["planned"], [ids],
                 os.path.join(workdir, "run-planned"), tool="kiln-runtime")[0]
    base = run_ok("generated decoder unplanned", programs["unplanned"], [ids],
                  os.path.join(workdir, "run-unplanned"), tool="kiln-runtime")[0]
    ref = llama_decoder_reference(arrays, ids)
    err = float(np.abs(got - ref).max())
    assert err <= TOLERANCE, (
        f"[generated decoder] logits f32{list(got.shape)} differ from the float64 reference "
        f"by {err} (tolerance {TOLERANCE})")
    assert np.array_equal(got, base), "[generated decoder] planned and unplanned runs differ"


@pytest.mark.parametrize("seq", [16, 64])
def test_wide_decoder_plan(tmp_path, seq):
    """Planning only (splat weights): a wider decoder (dim 256, vocab 1024)."""
    text, _ = llama_decoder_mlir(n_layers=8, dim=256, hidden=512, vocab=1024, seq=seq,
                                 random_weights=False)
    src = os.path.join(str(tmp_path), "wide.mlir")
    open(src, "w").write(text)
    planned = os.path.join(str(tmp_path), "wide.planned.mlir")
    proc = run_tool([binary("kiln-opt"), src, "--kiln-plan-memory", "-o", planned])
    assert proc.returncode == 0, describe(proc)
    arena, lower, naive = plan_figures_ok(f"wide decoder seq {seq}",
                                          generic_functions("wide", planned)[0])
    print(f"wide decoder seq {seq}: arena {arena} bytes, lower bound {lower}, naive {naive}")


def test_checker_catches_an_overlap(tmp_path):
    """The checker is not vacuous: two values live together put on one offset fail it."""
    text, _ = llama_decoder_mlir(n_layers=1, random_weights=False)
    src = os.path.join(str(tmp_path), "one.mlir")
    open(src, "w").write(text)
    planned = os.path.join(str(tmp_path), "one.planned.mlir")
    proc = run_tool([binary("kiln-opt"), src, "--kiln-plan-memory", "-o", planned])
    assert proc.returncode == 0, describe(proc)
    func = generic_functions("one block", planned)[0]
    check_plan(func)
    # q, k and v (the three linears after the first rms_norm) are live together.
    linears = [op for op in func["ops"] if op["op"] == "kiln.linear"][:3]
    assert len({op["results"][0]["offset"] for op in linears}) == 3, linears
    linears[1]["results"][0]["offset"] = linears[0]["results"][0]["offset"]
    with pytest.raises(AssertionError, match="overlaps"):
        check_plan(func)


def test_writer_rejects_a_bad_plan(tmp_path):
    """The lowering writes the plan as given; the writer refuses a misaligned
    offset or one past the arena (the reader has the same rules)."""
    base = ('func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> attributes '
            '{kiln.arena_bytes = ARENA : i64} {\n'
            '  %a = kiln.unary "exp" %x {kiln.arena_offsets = array<i64: OFFSET>} '
            ': (tensor<2x4xf32>) -> tensor<2x4xf32>\n'
            '  return %a : tensor<2x4xf32>\n}\n')
    cases = [("32", "64", "arena offset 32 is not a non-negative multiple of 64"),
             ("64", "64", "does not fit in the arena of 64 bytes"),
             ("0", "64", None)]
    for offset, arena, error in cases:
        src = os.path.join(str(tmp_path), f"p{offset}.mlir")
        open(src, "w").write(base.replace("OFFSET", offset).replace("ARENA", arena))
        out = os.path.join(str(tmp_path), f"p{offset}.kiln")
        proc = run_tool([binary("kiln-portable-translate"), src, "-o", out])
        if error is None:
            assert proc.returncode == 0, describe(proc)
            x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
            got = run_ok("offset 0", out, [x], os.path.join(str(tmp_path), "run"),
                         tool="kiln-runtime")[0]
            assert np.abs(got - np.exp(x)).max() <= TOLERANCE
        else:
            assert proc.returncode != 0 and error in proc.stderr, (
                f"offset {offset} in a {arena}-byte arena: expected '{error}'\n{describe(proc)}")
            assert not os.path.exists(out)
