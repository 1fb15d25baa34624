"""The standalone runtime binary links no LibTorch, MLIR or LLVM, and `inspect --json`
reports the documented keys with values consistent with the file."""
import os
import re
import subprocess

import pytest

import harness
import models

FORBIDDEN_LIBS = re.compile(r"torch|c10|mlir|llvm", re.IGNORECASE)
# Everything kiln-runtime may load: the C/C++ runtime, plus the tokenizer libraries
# (docs/llm.md §4): libsentencepiece (with protobuf-lite, linked into it or beside
# it) and libpcre2-8; libhwy (Highway run-time SIMD dispatch of kernels/opt/, shared
# because Debian's libhwy-dev ships no static library).
ALLOWED_LIBS = re.compile(r"^(linux-vdso|ld-linux[-\w.]*|libc|libm|libstdc\+\+|libgcc_s|"
                          r"libpthread|libdl|librt|libsentencepiece|libprotobuf-lite|"
                          r"libpcre2-8|libhwy)\.so")
# Itanium-mangled namespace prefixes: statically linked code would leave these symbols.
FORBIDDEN_SYMBOLS = (b"_ZN5torch", b"_ZN3c10", b"_ZN4mlir", b"_ZN4llvm")


def dialect_ops():
    """Op names from the op table of docs/dialect.md (| `name` | ...)."""
    text = open(os.path.join(harness.SOURCE_DIR, "docs", "dialect.md")).read()
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE))


def test_dialect_op_table_parses():
    ops = dialect_ops()
    assert {"linear", "unary", "binary", "softmax", "embedding", "constant"} <= ops, ops


def test_runtime_links_no_compiler_libraries():
    path = harness.binary("kiln-runtime")
    ldd = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    bad = [line.strip() for line in ldd.stdout.splitlines() if FORBIDDEN_LIBS.search(re.sub(r"\(0x[0-9a-f]+\)", "", line.split("=>")[0]))]
    assert not bad, f"kiln-runtime links compiler-side libraries:\n" + "\n".join(bad)
    names = [os.path.basename(line.split("=>")[0].split()[0]) for line in ldd.stdout.splitlines()
             if line.strip()]
    unexpected = [n for n in names if not ALLOWED_LIBS.match(n)]
    assert not unexpected, f"kiln-runtime links libraries outside the allowed list: {unexpected}"
    blob = open(path, "rb").read()
    found = [s.decode() for s in FORBIDDEN_SYMBOLS if s in blob]
    assert not found, f"kiln-runtime contains statically linked symbols from namespaces {found}"


@pytest.fixture(scope="module")
def mlp_program(programs):
    return programs.get("mlp", models.make_mlp(), [models.mlp_input(4)])


@pytest.mark.parametrize("tool", ["kiln", "kiln-runtime"])
def test_inspect_json(mlp_program, tool):
    info = harness.inspect_json(mlp_program, tool)
    for key in ("file_bytes", "constant_bytes", "format_version", "methods"):
        assert key in info, f"{tool} inspect --json lacks '{key}': {sorted(info)}"
    size = os.path.getsize(mlp_program)
    assert info["file_bytes"] == size, f"file_bytes {info['file_bytes']} != {size}"
    assert info["format_version"] == 2
    weights = sum(p.numel() * 4 for p in models.make_mlp().parameters())
    assert weights <= info["constant_bytes"] < size, (
        f"constant_bytes {info['constant_bytes']}: weights are {weights} bytes, file {size} bytes")
    assert list(info["methods"]) == ["forward"], info["methods"].keys()
    fwd = info["methods"]["forward"]
    for key in ("inputs", "outputs", "ops", "instructions"):
        assert key in fwd, f"methods.forward lacks '{key}': {sorted(fwd)}"
    assert len(fwd["inputs"]) == 1 and len(fwd["outputs"]) == 1, fwd
    ops = fwd["ops"]
    assert ops and all(isinstance(v, int) and v > 0 for v in ops.values()), ops
    unknown = set(ops) - dialect_ops()
    assert not unknown, f"ops not in docs/dialect.md: {unknown}"
    assert ops.get("linear") == 3, f"the MLP has 3 Linear layers, inspect reports {ops}"
    n = fwd["instructions"] if isinstance(fwd["instructions"], int) else len(fwd["instructions"])
    assert n == sum(ops.values()), f"instructions {n} != sum of op counts {sum(ops.values())}"


def test_inspect_json_same_from_both_tools(mlp_program):
    assert harness.inspect_json(mlp_program, "kiln") == harness.inspect_json(mlp_program, "kiln-runtime")


@pytest.mark.parametrize("tool", ["kiln", "kiln-runtime"])
def test_inspect_text(mlp_program, tool):
    proc = harness.run_tool([harness.binary(tool), "inspect", mlp_program])
    assert proc.returncode == 0, harness.describe(proc)
    assert "forward" in proc.stdout and "linear" in proc.stdout, proc.stdout
