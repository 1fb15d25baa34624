"""User errors get a clear message and exit code 1 (usage errors: non-zero and a
usage text), never a crash, and never leave an output file behind."""
import os
import re

import numpy as np
import pytest
import torch

import harness
import models


def assert_failed(proc, label, code=1):
    assert proc.returncode == code, f"[{label}] expected exit code {code}\n{harness.describe(proc)}"
    assert proc.stderr.strip(), f"[{label}] failed without a message on stderr\n{harness.describe(proc)}"


def leftovers(directory, keep):
    """Files in `directory` other than `keep` (e.g. OUT.kiln or OUT.tmp.<pid>)."""
    return sorted(set(os.listdir(directory)) - set(keep))


# --------------------------------------------------------------------------- compile

def test_unsupported_operator_names_op_and_source_line(tmp_path):
    pt = str(tmp_path / "rfft.pt")
    out = str(tmp_path / "rfft.kiln")
    harness.trace(models.UsesRfft(), [np.ones((2, 8), np.float32)]).save(pt)
    proc = harness.compile_model(pt, out)
    assert_failed(proc, "unsupported aten::fft_rfft")
    assert "fft_rfft" in proc.stderr, f"stderr does not name fft_rfft:\n{proc.stderr}"
    line = models.rfft_source_line()
    assert re.search(rf"models\.py[:(]{line}\b", proc.stderr), (
        f"stderr does not name the source line models.py:{line} of the torch.fft.rfft call:\n"
        f"{proc.stderr}")
    assert "Traceback" not in proc.stderr and "terminate called" not in proc.stderr, proc.stderr
    assert leftovers(tmp_path, ["rfft.pt"]) == [], f"compile left files: {leftovers(tmp_path, ['rfft.pt'])}"


def test_missing_model_file(tmp_path):
    missing = str(tmp_path / "does_not_exist.pt")
    out = str(tmp_path / "out.kiln")
    proc = harness.compile_model(missing, out)
    assert_failed(proc, "missing model file")
    assert "does_not_exist.pt" in proc.stderr, f"stderr does not name the path:\n{proc.stderr}"
    assert os.listdir(tmp_path) == []


def _state_dict_zip(path):
    # A common mistake: torch.save of weights instead of a TorchScript archive.
    torch.save(models.make_mlp().state_dict(), path)


def _eager_pickle(path):
    torch.save(models.make_mlp(), path)


@pytest.mark.parametrize("kind,write", [
    ("empty", lambda p: open(p, "wb").close()),
    ("text", lambda p: open(p, "w").write("def forward(x):\n    return x\n")),
    ("random_bytes", lambda p: open(p, "wb").write(np.random.default_rng(0).bytes(4096))),
    ("zip_without_model", lambda p: __import__("zipfile").ZipFile(p, "w").writestr("a/data.txt", "x")),
    ("state_dict", _state_dict_zip),
    ("pickled_eager_module", _eager_pickle),
], ids=lambda v: v if isinstance(v, str) else "")
def test_not_a_torchscript_archive(tmp_path, kind, write):
    pt = str(tmp_path / f"{kind}.pt")
    write(pt)
    proc = harness.compile_model(pt, str(tmp_path / "out.kiln"))
    assert_failed(proc, f"non-TorchScript input ({kind})")
    assert "terminate called" not in proc.stderr
    assert leftovers(tmp_path, [f"{kind}.pt"]) == []


def test_output_directory_does_not_exist(tmp_path):
    pt = str(tmp_path / "mlp.pt")
    harness.trace(models.make_mlp(), [models.mlp_input(2)]).save(pt)
    proc = harness.compile_model(pt, str(tmp_path / "no_such_dir" / "out.kiln"))
    assert_failed(proc, "output directory missing")
    assert leftovers(tmp_path, ["mlp.pt"]) == []


def test_unknown_backend(tmp_path):
    pt = str(tmp_path / "mlp.pt")
    harness.trace(models.make_mlp(), [models.mlp_input(2)]).save(pt)
    proc = harness.compile_model(pt, str(tmp_path / "out.kiln"), backend="no-such-backend")
    assert proc.returncode != 0 and proc.returncode > 0, harness.describe(proc)
    assert "no-such-backend" in proc.stderr, proc.stderr
    assert leftovers(tmp_path, ["mlp.pt"]) == []


@pytest.mark.parametrize("args", [[], ["compile"], ["compile", "x.pt"], ["run"], ["inspect"],
                                  ["no-such-command"]], ids=lambda a: " ".join(a) or "no-args")
def test_kiln_usage_errors(args):
    proc = harness.run_tool([harness.binary("kiln")] + args)
    assert proc.returncode > 0, harness.describe(proc)
    assert "usage" in (proc.stdout + proc.stderr).lower(), harness.describe(proc)


@pytest.mark.parametrize("args", [[], ["run"], ["inspect"], ["compile", "x.pt", "-o", "y.kiln"]],
                         ids=lambda a: " ".join(a[:1]) or "no-args")
def test_kiln_runtime_usage_errors(args):
    proc = harness.run_tool([harness.binary("kiln-runtime")] + args)
    assert proc.returncode > 0, harness.describe(proc)
    assert "usage" in (proc.stdout + proc.stderr).lower(), harness.describe(proc)


# --------------------------------------------------------------------------- run

@pytest.fixture(scope="module")
def mlp_program(programs):
    return programs.get("mlp", models.make_mlp(), [models.mlp_input(4)])


def run_expect_error(program, inputs_or_paths, tmp_path, label, method=None, tool="kiln", code=1):
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    paths = []
    for i, item in enumerate(inputs_or_paths):
        if isinstance(item, np.ndarray):
            p = str(tmp_path / f"input{i}.npy")
            np.save(p, item)
            paths.append(p)
        else:
            paths.append(item)
    proc = harness.run_program(program, paths, str(out_dir), method=method, tool=tool)
    assert_failed(proc, label, code)
    assert os.listdir(out_dir) == [], f"[{label}] outputs were written: {os.listdir(out_dir)}"
    return proc


@pytest.mark.parametrize("tool", ["kiln", "kiln-runtime"])
@pytest.mark.parametrize("label,inputs", [
    ("last dim 15 instead of 16", [np.zeros((4, 15), np.float32)]),
    ("last dim 3 instead of 16", [np.zeros((2, 16, 3), np.float32)]),
    ("int64 instead of float32", [np.zeros((4, 16), np.int64)]),
    ("float64 input (unsupported dtype)", [np.zeros((4, 16), np.float64)]),
    ("no inputs", []),
    ("two inputs for one", [np.zeros((4, 16), np.float32), np.zeros((4, 16), np.float32)]),
])
def test_bad_inputs(mlp_program, tmp_path, tool, label, inputs):
    run_expect_error(mlp_program, inputs, tmp_path, f"mlp: {label}", tool=tool)


def test_input_file_missing_or_not_npy(mlp_program, tmp_path):
    run_expect_error(mlp_program, [str(tmp_path / "nope.npy")], tmp_path, "missing input file")
    bogus = tmp_path / "bogus.npy"
    bogus.write_text("not an npy file")
    run_expect_error(mlp_program, [str(bogus)], tmp_path, "input file is not .npy")
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, np.zeros((4, 16), np.float32))
    data = truncated.read_bytes()
    truncated.write_bytes(data[:len(data) - 10])
    run_expect_error(mlp_program, [str(truncated)], tmp_path, "truncated .npy")


def test_unknown_method(mlp_program, tmp_path):
    proc = run_expect_error(mlp_program, [models.mlp_input(2)], tmp_path, "unknown method",
                            method="no_such_method")
    assert "no_such_method" in proc.stderr, proc.stderr


def test_missing_program(tmp_path):
    run_expect_error(str(tmp_path / "missing.kiln"), [models.mlp_input(2)], tmp_path, "missing program")


@pytest.mark.parametrize("tool", ["kiln", "kiln-runtime"])
def test_missing_output_dir_flag(mlp_program, tmp_path, tool):
    p = str(tmp_path / "x.npy")
    np.save(p, models.mlp_input(2))
    proc = harness.run_tool([harness.binary(tool), "run", mlp_program, "--input", p])
    assert proc.returncode > 0, harness.describe(proc)
    assert "usage" in (proc.stdout + proc.stderr).lower() or "--output-dir" in proc.stderr, \
        harness.describe(proc)


@pytest.mark.parametrize("bad_index", [10, 1000, -1])
def test_embedding_index_out_of_range(programs, tmp_path, bad_index):
    case = models.op_case("embedding")  # nn.Embedding(10, 4)
    program = programs.get("embedding", case.module, case.inputs())
    ids = np.array([[1, 2, bad_index]], np.int64)
    proc = run_expect_error(program, [ids], tmp_path, f"embedding index {bad_index} of 10 rows")
    assert "embedding" in proc.stderr, proc.stderr
