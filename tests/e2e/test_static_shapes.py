"""Static shapes: programs compiled with declared input shapes and dtypes.

A method's input specs come from `kiln compile --input-shape [METHOD:]DIMS[:DTYPE]` or
from the archive extra file `kiln/input_specs.json` that `kiln.torchscript.save`
(python/kiln/torchscript.py) writes. With them every value of the program must be
statically shaped (no unranked `*x`, no dynamic `?` dim), the outputs must match eager
PyTorch (float: relative max error <= 1e-4; ints/bools: exact), and the runtime must
reject inputs of another shape or dtype with a clear message.
"""
import json
import os
import struct
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import List, Sequence

import numpy as np
import pytest
import torch

import harness
import models

# The Python helper package lives in python/ (PYTHONPATH=python for users).
sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))
import kiln.torchscript  # noqa: E402

DTYPE_NAMES = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64"}


def spec_of(a: np.ndarray) -> str:
    dims = "x".join(str(d) for d in a.shape) if a.ndim else "scalar"
    return f"{dims}:{DTYPE_NAMES[a.dtype]}"


def input_shape_args(inputs: Sequence[np.ndarray], method: str = "") -> List[str]:
    args = []
    for a in inputs:
        args += ["--input-shape", (method + ":" if method else "") + spec_of(a)]
    return args


def compile_with(label: str, pt: str, out: str, extra: Sequence[str] = ()) -> str:
    proc = harness.compile_model(pt, out, extra=list(extra))
    assert proc.returncode == 0, f"[{label}] kiln compile failed\n{harness.describe(proc)}"
    assert os.path.isfile(out), f"[{label}] kiln compile exited 0 but wrote no {out}"
    return out


def dynamic_lines(mlir: str) -> List[str]:
    """Lines of the module (not its resource blobs) with an unranked or dynamic type."""
    body = mlir.split("{-#")[0]
    return [line.strip() for line in body.splitlines() if "*x" in line or "?" in line]


def emit_mlir(label: str, pt: str, out: str, extra: Sequence[str] = ()) -> str:
    proc = harness.compile_model(pt, out, extra=["--emit-mlir", "-q"] + list(extra))
    assert proc.returncode == 0, f"[{label}] kiln compile --emit-mlir failed\n{harness.describe(proc)}"
    with open(out) as f:
        return f.read()


def assert_fully_static_mlir(label: str, mlir: str):
    dynamic = dynamic_lines(mlir)
    assert not dynamic, (f"[{label}] {len(dynamic)} lines of the compiled MLIR have unranked or "
                         f"dynamic types, expected every value static; first:\n  "
                         + "\n  ".join(dynamic[:5]))
    assert "kiln.dtype_guessed" not in mlir, f"[{label}] an argument dtype is still guessed"


def program_values(program: str) -> dict:
    """{method: [(rank, shape), ...]} of every value in a program file, read from the
    flatbuffer per program.fbs (Program.methods = field 1; Method.values = field 1;
    Value.rank = field 2 (default -1), Value.shape = field 3)."""
    with open(program, "rb") as f:
        data = f.read()
    h = harness.read_header(data)
    fb = data[h["flatbuffer_offset"]:h["flatbuffer_offset"] + h["flatbuffer_size"]]
    root = harness.FlatTable(fb, struct.unpack_from("<I", fb, 0)[0])
    result = {}
    for method in root.table_vector(1):
        name_pos = method._field_pos(0)
        name_at = name_pos + struct.unpack_from("<I", fb, name_pos)[0]
        name_len = struct.unpack_from("<I", fb, name_at)[0]
        name = fb[name_at + 4:name_at + 4 + name_len].decode()
        values = []
        for value in method.table_vector(1):
            rank = value.scalar(2, "i", default=-1)
            shape = []
            p = value._field_pos(3)
            if p is not None:
                vec = p + struct.unpack_from("<I", fb, p)[0]
                n = struct.unpack_from("<I", fb, vec)[0]
                shape = list(struct.unpack_from(f"<{n}q", fb, vec + 4))
            values.append((rank, shape))
        result[name] = values
    return result


def assert_fully_static_program(label: str, program: str):
    for method, values in program_values(program).items():
        dynamic = [(i, r, s) for i, (r, s) in enumerate(values) if r < 0 or -1 in s]
        assert not dynamic, (f"[{label}] method {method}: {len(dynamic)} of {len(values)} values "
                             f"are not static (index, rank, shape): {dynamic[:5]}")


def assert_declared_inputs(label: str, program: str, method: str, inputs: Sequence[np.ndarray]):
    declared = harness.inspect_json(program)["methods"][method]["inputs"]
    expected = [{"dtype": DTYPE_NAMES[a.dtype], "shape": list(a.shape)} for a in inputs]
    got = [{"dtype": d["dtype"], "shape": d.get("shape")} for d in declared]
    assert got == expected, f"[{label}] method {method} declares inputs {got}, expected {expected}"


# --------------------------------------------------------------------------- models

def llama_case(batch, seq_len):
    return models.make_llama(), [models.llama_tokens(seq_len, batch, seed=seq_len)]


def gpt2_case(batch, seq_len):
    return models.make_gpt2(), [models.gpt2_tokens(seq_len, batch, seed=seq_len)]


def mlp_case(batch, _unused=None):
    return models.make_mlp(), [models.mlp_input(batch, seed=batch)]


MODEL_CASES = {
    "llama_1x8": (llama_case, 1, 8),
    "llama_2x5": (llama_case, 2, 5),
    "gpt2_1x8": (gpt2_case, 1, 8),
    "gpt2_2x16": (gpt2_case, 2, 16),
    "mlp_4": (mlp_case, 4, None),
    "mlp_1": (mlp_case, 1, None),
}


def make_case(name):
    make, a, b = MODEL_CASES[name]
    return make(a, b)


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_parity_with_input_shape(name, tmp_path):
    """A bare trace + --input-shape: static program, same numbers as eager."""
    model, inputs = make_case(name)
    pt, program = str(tmp_path / f"{name}.pt"), str(tmp_path / f"{name}.kiln")
    harness.trace(model, inputs).save(pt)
    args = input_shape_args(inputs)
    label = f"{name} --input-shape {' '.join(args[1::2])}"
    compile_with(label, pt, program, args)
    assert_declared_inputs(label, program, "forward", inputs)
    assert_fully_static_program(label, program)
    outs = harness.run_ok(label, program, inputs, str(tmp_path / "run"), expected_outputs=1)
    harness.assert_outputs_match(label, outs, harness.eager(model, inputs))


@pytest.mark.parametrize("name", ["llama_1x8", "gpt2_2x16", "mlp_4"])
def test_parity_with_python_helper(name, tmp_path):
    """kiln.torchscript.save writes kiln/input_specs.json; `kiln compile` needs no flag."""
    model, inputs = make_case(name)
    pt, program = str(tmp_path / f"{name}.pt"), str(tmp_path / f"{name}.kiln")
    kiln.torchscript.save(model, pt, tuple(torch.from_numpy(a) for a in inputs),
                          check_trace=False)
    with zipfile.ZipFile(pt) as z:
        entries = [n for n in z.namelist() if n.endswith("extra/kiln/input_specs.json")]
        assert len(entries) == 1, f"[{name}] archive entries: {z.namelist()}"
        specs = json.loads(z.read(entries[0]))
    expected = {"forward": [{"shape": list(a.shape), "dtype": DTYPE_NAMES[a.dtype]} for a in inputs]}
    assert specs == expected, f"[{name}] kiln/input_specs.json is {specs}, expected {expected}"
    label = f"{name} saved with kiln.torchscript.save"
    compile_with(label, pt, program)
    assert_declared_inputs(label, program, "forward", inputs)
    assert_fully_static_program(label, program)
    outs = harness.run_ok(label, program, inputs, str(tmp_path / "run"), expected_outputs=1)
    harness.assert_outputs_match(label, outs, harness.eager(model, inputs))


def two_methods_inputs():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 16)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    return {"forward": [x], "other": [x, y]}


def test_python_helper_several_methods(tmp_path):
    """methods={...}: traced with trace_module, each method gets its own specs."""
    model = models.make_two_methods()
    inputs = two_methods_inputs()
    pt, program = str(tmp_path / "two.pt"), str(tmp_path / "two.kiln")
    kiln.torchscript.save(model, pt, None, methods={
        name: tuple(torch.from_numpy(a) for a in ins) for name, ins in inputs.items()})
    compile_with("two_methods (helper)", pt, program)
    assert_fully_static_program("two_methods (helper)", program)
    for method, ins in inputs.items():
        label = f"two_methods (helper) --method {method}"
        assert_declared_inputs(label, program, method, ins)
        fn = getattr(model, method)
        refs = harness.eager(fn, ins)
        outs = harness.run_ok(label, program, ins, str(tmp_path / method), method=method,
                              expected_outputs=len(refs))
        harness.assert_outputs_match(label, outs, refs)


def test_input_shape_overrides_archive_specs(tmp_path):
    """--input-shape wins over kiln/input_specs.json for the same method."""
    model, inputs = make_case("llama_1x8")
    pt, program = str(tmp_path / "llama.pt"), str(tmp_path / "llama.kiln")
    kiln.torchscript.save(model, pt, tuple(torch.from_numpy(a) for a in inputs),
                          check_trace=False)
    other = [models.llama_tokens(5, 1, seed=5)]
    label = "llama saved at [1, 8], compiled with --input-shape 1x5:i64"
    compile_with(label, pt, program, input_shape_args(other))
    assert_declared_inputs(label, program, "forward", other)
    outs = harness.run_ok(label, program, other, str(tmp_path / "run"), expected_outputs=1)
    harness.assert_outputs_match(label, outs, harness.eager(model, other))


# --------------------------------------------------------------------------- fully static

STATIC_MODELS = {
    "llama": (lambda: make_case("llama_1x8"), None),
    "gpt2": (lambda: make_case("gpt2_1x8"), None),
    "gpt2_lm_head_bias": (lambda: (models.make_gpt2(seed=1, lm_head_bias=True),
                                   [models.gpt2_tokens(8)]), None),
    "mlp": (lambda: make_case("mlp_4"), None),
}


@pytest.mark.parametrize("name", list(STATIC_MODELS))
def test_fully_static_mlir(name, tmp_path):
    """After the pipeline (canonicalization folds the size arithmetic) nothing is dynamic."""
    make, _ = STATIC_MODELS[name]
    model, inputs = make()
    pt = str(tmp_path / f"{name}.pt")
    harness.trace(model, inputs).save(pt)
    mlir = emit_mlir(name, pt, str(tmp_path / f"{name}.mlir"), input_shape_args(inputs))
    assert_fully_static_mlir(f"{name} --input-shape", mlir)


def test_fully_static_mlir_two_methods(tmp_path):
    model = models.make_two_methods()
    inputs = two_methods_inputs()
    traced = torch.jit.trace_module(model, {
        name: tuple(torch.from_numpy(a) for a in ins) for name, ins in inputs.items()})
    pt = str(tmp_path / "two.pt")
    traced.save(pt)
    args = input_shape_args(inputs["forward"], "forward") + input_shape_args(inputs["other"], "other")
    mlir = emit_mlir("two_methods", pt, str(tmp_path / "two.mlir"), args)
    assert "func.func @forward" in mlir and "func.func @other" in mlir, mlir[:2000]
    assert_fully_static_mlir("two_methods --input-shape forward:.. other:..", mlir)


def test_bare_trace_is_still_dynamic(tmp_path):
    """Without specs nothing changes: unranked arguments with guessed dtypes."""
    model, inputs = make_case("mlp_4")
    pt = str(tmp_path / "mlp.pt")
    harness.trace(model, inputs).save(pt)
    mlir = emit_mlir("mlp (no specs)", pt, str(tmp_path / "mlp.mlir"))
    assert "tensor<*xf32>" in mlir and "kiln.dtype_guessed" in mlir, mlir.split("{-#")[0]


# --------------------------------------------------------------------------- op cases

@pytest.fixture(scope="module")
def static_op_programs(tmp_path_factory):
    """Every op case of models.py, traced and compiled with its inputs' specs."""
    root = tmp_path_factory.mktemp("static_op_cases")
    jobs = {}
    for case in models.OP_CASES:
        pt, program = str(root / f"{case.name}.pt"), str(root / f"{case.name}.kiln")
        harness.trace(case.module, case.inputs()).save(pt)
        jobs[case.name] = (pt, program, input_shape_args(case.inputs()))
    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        procs = dict(zip(jobs, pool.map(
            lambda job: harness.compile_model(job[0], job[1], extra=job[2]), jobs.values())))
    return {name: (procs[name], jobs[name][1]) for name in jobs}


@pytest.mark.parametrize("case", models.OP_CASES, ids=lambda c: c.name)
def test_op_static(case, static_op_programs, tmp_path):
    inputs = case.inputs()
    proc, program = static_op_programs[case.name]
    shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in inputs)
    label = f"{case.name} static inputs {shapes}"
    assert proc.returncode == 0, f"[{label}] kiln compile failed\n{harness.describe(proc)}"
    assert_fully_static_program(label, program)
    refs = harness.eager(case.module, inputs)
    outs = harness.run_ok(label, program, inputs, str(tmp_path), tool="kiln-runtime",
                          expected_outputs=len(refs))
    harness.assert_outputs_match(label, outs, refs)


# --------------------------------------------------------------------------- errors

@pytest.fixture(scope="module")
def static_llama(tmp_path_factory):
    root = tmp_path_factory.mktemp("static_llama")
    model, inputs = make_case("llama_1x8")
    pt, program = str(root / "llama.pt"), str(root / "llama.kiln")
    harness.trace(model, inputs).save(pt)
    compile_with("llama 1x8:i64", pt, program, input_shape_args(inputs))
    return pt, program


@pytest.mark.parametrize("tool", ["kiln", "kiln-runtime"])
def test_wrong_shape_at_run_time(static_llama, tmp_path, tool):
    _, program = static_llama
    paths = harness.write_inputs(str(tmp_path), [models.llama_tokens(5)])
    proc = harness.run_program(program, paths, str(tmp_path / "out"), tool=tool)
    assert proc.returncode == 1, f"[llama [1, 8] run with [1, 5]] expected exit 1\n{harness.describe(proc)}"
    assert "input 0 (tokens) has shape [1,5], expected [1,8]" in proc.stderr, harness.describe(proc)


@pytest.mark.parametrize("tool", ["kiln", "kiln-runtime"])
def test_wrong_dtype_at_run_time(static_llama, tmp_path, tool):
    _, program = static_llama
    paths = harness.write_inputs(str(tmp_path), [models.llama_tokens(8).astype(np.float32)])
    proc = harness.run_program(program, paths, str(tmp_path / "out"), tool=tool)
    assert proc.returncode == 1, f"[llama i64 run with f32] expected exit 1\n{harness.describe(proc)}"
    assert "input 0 (tokens) has dtype f32, expected i64" in proc.stderr, harness.describe(proc)


@pytest.mark.parametrize("spec,message", [
    ("abc", "invalid --input-shape 'abc': 'abc' is not a shape"),
    ("1x:i64", "invalid --input-shape '1x:i64': '1x' is not a shape"),
    ("1x8:f64", "unknown dtype 'f64' (one of f32, i64, i1, i32, f16, bf16)"),
    ("forward:1x8:i64:extra", "expected [METHOD:]DIMS[:DTYPE]"),
    (":1x8", "the method name is empty"),
    ("decode:1x8:i64", "--input-shape names method 'decode', which the archive does not have "
                       "(methods: forward)"),
])
def test_malformed_input_shape(static_llama, tmp_path, spec, message):
    pt, _ = static_llama
    out = str(tmp_path / "x.kiln")
    proc = harness.compile_model(pt, out, extra=["--input-shape", spec])
    assert proc.returncode == 1, f"[--input-shape {spec}] expected exit 1\n{harness.describe(proc)}"
    assert message in proc.stderr, harness.describe(proc)
    assert not os.path.exists(out), f"[--input-shape {spec}] a failed compile wrote {out}"


def test_input_count_mismatch(static_llama, tmp_path):
    pt, _ = static_llama
    out = str(tmp_path / "x.kiln")
    proc = harness.compile_model(pt, out, extra=["--input-shape", "1x8:i64",
                                                 "--input-shape", "1x8:i64"])
    assert proc.returncode == 1, harness.describe(proc)
    assert "method forward takes 1 tensor input, 2 --input-shape given" in proc.stderr, \
        harness.describe(proc)
    assert not os.path.exists(out)
