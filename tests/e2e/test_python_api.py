"""The Python API (pybind11): `import kiln` from <build>/python; kiln.compile from an
nn.Module or a TorchScript file, kiln.load, Program.run against eager PyTorch
(relative max error <= 1e-4), methods / method_info / metadata, errors as Python
exceptions with the runtime's or compiler's message, kiln.export_hf."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import harness
import models

PYTHON_DIR = os.path.join(harness.BUILD_DIR, "python")
sys.path.insert(0, PYTHON_DIR)

import kiln  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def built_package():
    """The extension modules must come from this build (the .py files may come from
    the source tree when another test imported kiln from there first)."""
    import kiln._kiln
    here = os.path.dirname(os.path.abspath(kiln._kiln.__file__))
    if os.path.realpath(here) != os.path.realpath(os.path.join(PYTHON_DIR, "kiln")):
        pytest.fail(f"kiln._kiln comes from {here}, not from {PYTHON_DIR}/kiln: build the "
                    f"kiln_python target (ninja -C {harness.BUILD_DIR} kiln_python)", pytrace=False)


class Block(torch.nn.Module):
    """RMSNorm-ish + two linears + residual, two methods' worth of ops."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = torch.nn.Parameter(torch.randn(32, 16, generator=g) * 0.2)
        self.w2 = torch.nn.Parameter(torch.randn(16, 32, generator=g) * 0.2)
        self.scale = torch.nn.Parameter(torch.rand(16, generator=g) + 0.5)

    def forward(self, x):
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.scale
        return x + torch.nn.functional.silu(h @ self.w1.t()) @ self.w2.t()

    def last(self, x):
        return self.forward(x)[:, -1]


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def test_import_is_light():
    """`import kiln` loads neither torch nor the extension modules."""
    code = ("import sys, kiln; bad = [m for m in ('torch', 'kiln._kiln', 'kiln._compiler') "
            "if m in sys.modules]; print(bad)")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": PYTHON_DIR},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_compile_module_load_run(tmp_path):
    model = Block().eval()
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))
    out = str(tmp_path / "block.kiln")
    assert kiln.compile(model, out, example_inputs=(x,)) == out
    prog = kiln.load(out)
    assert prog.methods == ["forward"]
    info = prog.method_info("forward")
    assert [(i["dtype"], i["shape"]) for i in info["inputs"]] == [("f32", (2, 5, 16))]
    assert info["outputs"][0]["dtype"] == "f32"
    assert prog.metadata["source_model"] == "model.pt" and prog.metadata["backend"] == "portable"
    (got,) = prog.run("forward", [x.numpy()])
    with torch.no_grad():
        want = model(x).numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    err = rel_err(got, want)
    assert err <= 1e-4, f"Block forward [2,5,16]: relative max error {err:.3g} > 1e-4"
    # The same through __call__, and again (buffers are reused between runs).
    np.testing.assert_array_equal(prog(x.numpy())[0], got)


def test_compile_two_methods_and_options(tmp_path):
    model = Block().eval()
    x = torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(2))
    out = str(tmp_path / "two.kiln")
    kiln.compile(model, out, methods={"forward": (x,), "last": (x,)}, quantize="int8",
                 metadata={"note": "héllo"})
    prog = kiln.load(out)
    assert sorted(prog.methods) == ["forward", "last"]
    assert prog.metadata["note"] == "héllo" and prog.metadata["quantize"] == "int8"
    (last,) = prog.run("last", [x.numpy()])
    with torch.no_grad():
        want = model.last(x).numpy()
    assert last.shape == (1, 16)
    # int8 weights: close, not exact.
    assert rel_err(last, want) < 0.05


def test_compile_from_file(tmp_path):
    pt = str(tmp_path / "mlp.pt")
    mlp = models.make_mlp()
    x = models.mlp_input(3)
    harness.trace(mlp, [x]).save(pt)
    out = tmp_path / "mlp.kiln"
    kiln.compile(pt, out, input_shapes=["3x16"])
    prog = kiln.load(out)
    assert prog.method_info("forward")["inputs"][0]["shape"] == (3, 16)
    (got,) = prog.run("forward", x)
    want = harness.eager(mlp, [x])[0]
    err = rel_err(got, want)
    assert err <= 1e-4, f"MLP [3,16]: relative max error {err:.3g} > 1e-4"


def test_bad_inputs_raise_value_error(tmp_path):
    model = Block().eval()
    x = torch.randn(2, 5, 16)
    out = str(tmp_path / "block.kiln")
    kiln.compile(model, out, example_inputs=(x,))
    prog = kiln.load(out)
    with pytest.raises(ValueError, match=re.escape("shape [2,6,16], expected [2,5,16]")):
        prog.run("forward", [np.zeros((2, 6, 16), np.float32)])
    with pytest.raises(ValueError, match="dtype i64, expected f32"):
        prog.run("forward", [np.zeros((2, 5, 16), np.int64)])
    with pytest.raises(ValueError, match="expected 1 inputs, got 2"):
        prog.run("forward", [x.numpy(), x.numpy()])
    with pytest.raises(ValueError, match="complex"):
        prog.run("forward", [np.zeros((2, 5, 16), np.complex64)])
    with pytest.raises(KeyError, match="no method 'nope'"):
        prog.run("nope", [x.numpy()])
    with pytest.raises(RuntimeError, match="not an LLM program"):
        prog.generate(prompt_tokens=[1, 2])
    # Non-contiguous input arrays are copied, not misread.
    big = np.random.default_rng(3).standard_normal((2, 5, 32)).astype(np.float32)
    (a,) = prog.run("forward", [big[:, :, ::2]])
    (b,) = prog.run("forward", [np.ascontiguousarray(big[:, :, ::2])])
    np.testing.assert_array_equal(a, b)


def test_corrupt_and_missing_files(tmp_path):
    model = Block().eval()
    out = tmp_path / "block.kiln"
    kiln.compile(model, out, example_inputs=(torch.randn(1, 2, 16),))
    data = bytearray(out.read_bytes())
    with pytest.raises(OSError, match="missing.kiln"):
        kiln.load(tmp_path / "missing.kiln")
    trunc = tmp_path / "trunc.kiln"
    trunc.write_bytes(bytes(data[:len(data) // 2]))
    with pytest.raises(RuntimeError):
        kiln.load(trunc)
    flipped = tmp_path / "flipped.kiln"
    data[len(data) - 100] ^= 0xFF  # inside the constant segments: hash mismatch
    flipped.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="hash"):
        kiln.load(flipped)
    garbage = tmp_path / "garbage.kiln"
    garbage.write_bytes(b"not a program at all" * 10)
    with pytest.raises(RuntimeError):
        kiln.load(garbage)


def test_compile_error_has_diagnostics(tmp_path):
    out = tmp_path / "rfft.kiln"
    with pytest.raises(kiln.CompileError) as info:
        kiln.compile(models.UsesRfft(), out, example_inputs=(torch.ones(2, 8),))
    text = str(info.value)
    assert "fft_rfft" in text and re.search(rf"models\.py[:(]{models.rfft_source_line()}\b", text), text
    assert info.value.diagnostics and not out.exists()
    with pytest.raises(kiln.CompileError, match="does not exist"):
        kiln.compile(tmp_path / "nothing.pt", out)
    with pytest.raises(kiln.CompileError, match="invalid --quantize"):
        kiln.compile(tmp_path / "nothing.pt", out, quantize="int3")
    with pytest.raises(ValueError, match="example_inputs"):
        kiln.compile(Block(), out)


def test_export_hf_and_generate(tmp_path):
    from kiln.models import tiny_config
    from kiln.models.testing import write_random_checkpoint
    ckpt = str(tmp_path / "ckpt")
    eager = write_random_checkpoint(ckpt, tiny_config("mobilellm-r1"), seed=4).eval()
    out = str(tmp_path / "r1.kiln")
    report = kiln.export_hf(ckpt, out, max_seq_len=32, prefill_chunk=4)
    assert report["family"] == "mobilellm-r1" and os.path.isfile(out)
    assert callable(kiln.export_hf), "importing kiln.export_hf replaced the function"
    prog = kiln.load(out)
    assert sorted(prog.methods) == ["decode", "prefill", "prefill_last"] and prog.is_llm
    assert prog.metadata["kiln.llm.family"] == "mobilellm-r1"
    assert len(prog.state_names) == 2 * 2  # k and v per layer
    r = prog.generate(prompt_tokens=[1, 7, 9, 11, 13, 17], max_new_tokens=10, ignore_eos=True)
    want, margins, _ = eager.generate_greedy([1, 7, 9, 11, 13, 17], 10)
    assert r.tokens == [int(t) for t in want] or min(margins) < 1e-4, (r.tokens, list(want))
    # The cache is the program's state: reset_state zeroes it.
    assert any(np.abs(prog.state(n)).max() > 0 for n in prog.state_names)
    prog.reset_state()
    assert all(np.abs(prog.state(n)).max() == 0 for n in prog.state_names)
