"""Parity: trace with torch.jit.trace, `kiln compile`, `kiln run`, compare with eager
PyTorch. Float outputs: relative max error max|out - ref| / max|ref| <= 1e-4;
integer and bool outputs: exact, with the same dtype and shape.

Decoders and the MLP are traced at one shape and run at several: a bare traced archive
carries no input shapes, so the runtime must compute every shape from the inputs.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import harness
import models


# --------------------------------------------------------------------------- op cases

# One `kiln compile` per op case (an unsupported op fails only its own case). The
# compiles run in parallel up front because each start of `kiln` loads LibTorch; the
# programs then run with `kiln-runtime` (same runtime library as `kiln run`, which the
# decoder, MLP and two-method tests below use).
OP_RUN_TOOL = "kiln-runtime"


@pytest.fixture(scope="session")
def op_programs(tmp_path_factory):
    root = tmp_path_factory.mktemp("op_cases")
    jobs = {}
    for case in models.OP_CASES:
        pt, program = str(root / f"{case.name}.pt"), str(root / f"{case.name}.kiln")
        harness.trace(case.module, case.inputs()).save(pt)
        jobs[case.name] = (pt, program)
    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        procs = dict(zip(jobs, pool.map(lambda job: harness.compile_model(*job), jobs.values())))
    return {name: (procs[name], jobs[name][1]) for name in jobs}


@pytest.mark.parametrize("case", models.OP_CASES, ids=lambda c: c.name)
def test_op(case, op_programs, tmp_path):
    inputs = case.inputs()
    proc, program = op_programs[case.name]
    assert proc.returncode == 0, f"[{case.name}] kiln compile failed\n{harness.describe(proc)}"
    refs = harness.eager(case.module, inputs)
    shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in inputs)
    label = f"{case.name} inputs {shapes}"
    outs = harness.run_ok(label, program, inputs, str(tmp_path), tool=OP_RUN_TOOL,
                          expected_outputs=len(refs))
    harness.assert_outputs_match(label, outs, refs)


# --------------------------------------------------------------------------- decoders

TRACE_LEN = 8


@pytest.fixture(scope="module")
def llama():
    model = models.make_llama()
    return model, [models.llama_tokens(TRACE_LEN)]


@pytest.mark.parametrize("seq_len,batch", [(8, 1), (5, 1), (1, 1), (13, 1), (4, 2)])
def test_llama(llama, programs, tmp_path, seq_len, batch):
    model, example = llama
    program = programs.get("llama", model, example)
    inputs = [models.llama_tokens(seq_len, batch, seed=seq_len)]
    label = f"llama (traced at T={TRACE_LEN}) tokens [{batch}, {seq_len}]"
    outs = harness.run_ok(label, program, inputs, str(tmp_path), expected_outputs=1)
    harness.assert_outputs_match(label, outs, harness.eager(model, inputs))


@pytest.fixture(scope="module")
def gpt2():
    return models.make_gpt2(), [models.gpt2_tokens(TRACE_LEN)]


@pytest.mark.parametrize("seq_len,batch", [(8, 1), (16, 1), (5, 1), (1, 1), (3, 2)])
def test_gpt2(gpt2, programs, tmp_path, seq_len, batch):
    model, example = gpt2
    program = programs.get("gpt2", model, example)
    inputs = [models.gpt2_tokens(seq_len, batch, seed=seq_len)]
    label = f"gpt2 (traced at T={TRACE_LEN}) tokens [{batch}, {seq_len}]"
    outs = harness.run_ok(label, program, inputs, str(tmp_path), expected_outputs=1)
    harness.assert_outputs_match(label, outs, harness.eager(model, inputs))


@pytest.mark.parametrize("seq_len", [8, 3])
def test_gpt2_lm_head_bias(programs, tmp_path, seq_len):
    model = models.make_gpt2(seed=1, lm_head_bias=True)
    program = programs.get("gpt2_head_bias", model, [models.gpt2_tokens(TRACE_LEN)])
    inputs = [models.gpt2_tokens(seq_len, seed=seq_len)]
    label = f"gpt2 lm_head with bias, tokens [1, {seq_len}]"
    outs = harness.run_ok(label, program, inputs, str(tmp_path), expected_outputs=1)
    harness.assert_outputs_match(label, outs, harness.eager(model, inputs))


# --------------------------------------------------------------------------- MLP

@pytest.mark.parametrize("batch", [4, 1, 7])
def test_mlp(programs, tmp_path, batch):
    model = models.make_mlp()
    program = programs.get("mlp", model, [models.mlp_input(4)])
    inputs = [models.mlp_input(batch, seed=batch)]
    label = f"mlp (traced at B=4) input float32[{batch}, 16]"
    outs = harness.run_ok(label, program, inputs, str(tmp_path), expected_outputs=1)
    harness.assert_outputs_match(label, outs, harness.eager(model, inputs))


def test_mlp_explicit_portable_backend(programs, tmp_path):
    model = models.make_mlp()
    program = programs.get("mlp", model, [models.mlp_input(4)], backend="portable")
    inputs = [models.mlp_input(3, seed=3)]
    outs = harness.run_ok("mlp --backend portable", program, inputs, str(tmp_path), expected_outputs=1)
    harness.assert_outputs_match("mlp --backend portable", outs, harness.eager(model, inputs))


@pytest.mark.parametrize("tool", ["kiln", "kiln-runtime"])
def test_llama_with_each_binary(llama, programs, tmp_path, tool):
    """The standalone runtime binary runs the same program to the same result."""
    model, example = llama
    program = programs.get("llama", model, example)
    inputs = [models.llama_tokens(6, seed=6)]
    label = f"llama tokens [1, 6] via {tool} run"
    outs = harness.run_ok(label, program, inputs, str(tmp_path), tool=tool, expected_outputs=1)
    harness.assert_outputs_match(label, outs, harness.eager(model, inputs))


# --------------------------------------------------------------------------- two methods

@pytest.fixture(scope="module")
def two_methods(tmp_path_factory):
    model = models.make_two_methods()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 16)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    traced = torch.jit.trace_module(model, {"forward": (torch.from_numpy(x),),
                                            "other": (torch.from_numpy(x), torch.from_numpy(y))})
    root = tmp_path_factory.mktemp("two_methods")
    pt, program = str(root / "two.pt"), str(root / "two.kiln")
    traced.save(pt)
    harness.compile_ok("two_methods", pt, program)
    return model, program


@pytest.mark.parametrize("method", [None, "forward", "other"])
def test_two_methods(two_methods, tmp_path, method):
    model, program = two_methods
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 16)).astype(np.float32)  # batch 2: traced with 3
    y = rng.standard_normal((2, 4)).astype(np.float32)
    inputs = [x, y] if method == "other" else [x]
    fn = model.other if method == "other" else model.forward
    label = f"two_methods --method {method or '(default: forward)'}"
    refs = harness.eager(fn, inputs)
    outs = harness.run_ok(label, program, inputs, str(tmp_path), method=method,
                          expected_outputs=len(refs))
    harness.assert_outputs_match(label, outs, refs)


def test_two_methods_listed_by_inspect(two_methods):
    _, program = two_methods
    info = harness.inspect_json(program)
    assert set(info["methods"]) == {"forward", "other"}, info["methods"].keys()
    assert len(info["methods"]["forward"]["inputs"]) == 1
    assert len(info["methods"]["other"]["inputs"]) == 2
    assert len(info["methods"]["other"]["outputs"]) == 2
