"""The tiny_llama example: make_model.py writes a model and input that compile, run
and match PyTorch according to compare.py; compare.py itself flags a bad output."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import harness

EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "tiny_llama")


def python(*args):
    return subprocess.run([sys.executable, *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


def make_model(out_dir, seq_len=16):
    proc = python(os.path.join(EXAMPLE, "make_model.py"), out_dir, "--seq-len", seq_len)
    assert proc.returncode == 0, proc.stderr
    pt, inp = os.path.join(out_dir, "tiny_llama.pt"), os.path.join(out_dir, "input.npy")
    assert proc.stdout.split() == [pt, inp]
    return pt, inp


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """(model.pt, input.npy) written once by make_model.py for this module."""
    return make_model(str(tmp_path_factory.mktemp("tiny_llama")))


def test_make_model_is_deterministic(example, tmp_path):
    pt_a, in_a = example
    pt_b, in_b = make_model(str(tmp_path))
    assert np.array_equal(np.load(in_a), np.load(in_b))
    assert np.load(in_a).dtype == np.int64 and np.load(in_a).shape == (1, 16)
    a, b = torch.jit.load(pt_a), torch.jit.load(pt_b)
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(ta, tb), na


def test_compare_script_detects_errors(example, tmp_path):
    """compare.py passes an exact copy of the reference and fails a perturbed one."""
    pt, inp = example
    module = torch.jit.load(pt)
    with torch.no_grad():
        ref = module(torch.from_numpy(np.load(inp))).numpy()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    np.save(out_dir / "output0.npy", ref)
    ok = python(os.path.join(EXAMPLE, "compare.py"), pt, inp, out_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = ref.copy()
    bad.flat[7] += 1e-3 * np.abs(ref).max()
    np.save(out_dir / "output0.npy", bad)
    fail = python(os.path.join(EXAMPLE, "compare.py"), pt, inp, out_dir)
    assert fail.returncode == 1 and "FAIL" in fail.stdout, fail.stdout + fail.stderr


def test_example_end_to_end(example, tmp_path):
    pt, inp = example
    program = str(tmp_path / "tiny_llama.kiln")
    harness.compile_ok("tiny_llama example", pt, program)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = harness.run_program(program, [inp], str(out_dir))
    assert proc.returncode == 0, harness.describe(proc)
    cmp = python(os.path.join(EXAMPLE, "compare.py"), pt, inp, out_dir)
    assert cmp.returncode == 0, f"compare.py:\n{cmp.stdout}{cmp.stderr}"
