"""Helpers shared by the end-to-end tests: locating and running the Kiln binaries,
tracing and saving models, comparing outputs, and reading the program file layout
(docs/program-format.md) independently of the C++ reader.
"""
import os
import shutil
import struct
import subprocess
import warnings
from typing import List, Optional, Sequence

import numpy as np
import pytest
import torch

SOURCE_DIR = os.environ.get("KILN_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("KILN_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

TOLERANCE = 1e-4
# Generous: every command on these tiny models takes well under a second; the limit
# only exists so that a hang fails the test instead of blocking the suite.
DEFAULT_TIMEOUT = 60


def binary(name: str) -> str:
    """Absolute path of a built tool; fails the test (not skip) when it is missing."""
    path = os.path.join(BUILD_DIR, "bin", name)
    if not os.path.isfile(path):
        pytest.fail(f"{path} does not exist: build it first "
                    f"(ninja -C {BUILD_DIR} {name}) or set KILN_BUILD_DIR", pytrace=False)
    return path


def run_tool(args: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs a command, capturing text output. A timeout fails the test."""
    try:
        return subprocess.run([str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout}s: {' '.join(map(str, args))}", pytrace=False)


def describe(proc: subprocess.CompletedProcess) -> str:
    return (f"command: {' '.join(proc.args)}\nexit code: {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")


# --------------------------------------------------------------------------- torch side

def trace(module: torch.nn.Module, example_inputs: Sequence[np.ndarray]) -> torch.jit.ScriptModule:
    tensors = tuple(torch.from_numpy(a) for a in example_inputs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(module, tensors, check_trace=False)


def flatten_outputs(result) -> List[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        out = []
        for r in result:
            out.extend(flatten_outputs(r))
        return out
    raise TypeError(f"unsupported output type {type(result).__name__}")


def eager(fn, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Reference outputs: runs `fn` (a module or bound method) on copies of inputs."""
    with torch.no_grad():
        result = fn(*[torch.from_numpy(a.copy()) for a in inputs])
    return [t.detach().numpy().copy() for t in flatten_outputs(result)]


# --------------------------------------------------------------------------- CLI

def compile_model(pt_path: str, out_path: str, backend: Optional[str] = None,
                  extra: Sequence[str] = ()) -> subprocess.CompletedProcess:
    args = [binary("kiln"), "compile", pt_path, "-o", out_path]
    if backend:
        args += ["--backend", backend]
    return run_tool(list(args) + list(extra))


def compile_ok(label: str, pt_path: str, out_path: str, backend: Optional[str] = None) -> str:
    proc = compile_model(pt_path, out_path, backend)
    assert proc.returncode == 0, f"[{label}] kiln compile failed\n{describe(proc)}"
    assert os.path.isfile(out_path), f"[{label}] kiln compile exited 0 but wrote no {out_path}"
    return out_path


def write_inputs(workdir: str, inputs: Sequence[np.ndarray]) -> List[str]:
    paths = []
    for i, a in enumerate(inputs):
        assert a.dtype in (np.float32, np.int64), f"test input {i} has dtype {a.dtype}"
        p = os.path.join(workdir, f"input{i}.npy")
        np.save(p, np.ascontiguousarray(a))
        paths.append(p)
    return paths


def run_program(program: str, input_paths: Sequence[str], output_dir: str,
                method: Optional[str] = None, tool: str = "kiln",
                timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
    args = [binary(tool), "run", program]
    if method:
        args += ["--method", method]
    for p in input_paths:
        args += ["--input", p]
    args += ["--output-dir", output_dir]
    return run_tool(args, timeout)


def run_ok(label: str, program: str, inputs: Sequence[np.ndarray], workdir: str,
           method: Optional[str] = None, tool: str = "kiln",
           expected_outputs: Optional[int] = None) -> List[np.ndarray]:
    """Runs a program on `inputs` and returns its outputs (output0.npy, ...)."""
    os.makedirs(workdir, exist_ok=True)
    in_dir = os.path.join(workdir, "in")
    out_dir = os.path.join(workdir, "out")
    for d in (in_dir, out_dir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    paths = write_inputs(in_dir, inputs)
    proc = run_program(program, paths, out_dir, method, tool)
    assert proc.returncode == 0, f"[{label}] {tool} run failed\n{describe(proc)}"
    files = sorted(os.listdir(out_dir))
    count = len(files)
    expected_files = sorted(f"output{i}.npy" for i in range(count))
    assert files == expected_files, (
        f"[{label}] {tool} run wrote {files}, expected output0.npy .. output{count - 1}.npy")
    if expected_outputs is not None:
        assert count == expected_outputs, (
            f"[{label}] {tool} run wrote {count} outputs, the model has {expected_outputs}")
    return [np.load(os.path.join(out_dir, f"output{i}.npy")) for i in range(count)]


def inspect_json(program: str, tool: str = "kiln") -> dict:
    import json
    proc = run_tool([binary(tool), "inspect", program, "--json"])
    assert proc.returncode == 0, f"{tool} inspect --json failed\n{describe(proc)}"
    try:
        return json.loads(proc.stdout)
    except ValueError as e:
        raise AssertionError(f"{tool} inspect --json printed invalid JSON ({e}):\n{proc.stdout[:2000]}")


# --------------------------------------------------------------------------- comparison

def relative_max_error(out: np.ndarray, ref: np.ndarray) -> float:
    """max|out - ref| / max|ref| over finite reference values, computed in float64.

    Non-finite reference values (-inf from masks, ...) must be reproduced exactly, and
    a non-finite output where the reference is finite is an infinite error. If the
    reference is all zeros the absolute error is returned.
    """
    out64 = out.astype(np.float64)
    ref64 = ref.astype(np.float64)
    if ref64.size == 0:
        return 0.0
    finite = np.isfinite(ref64)
    if not np.array_equal(out64[~finite], ref64[~finite], equal_nan=True):
        return float("inf")
    if not np.all(np.isfinite(out64[finite])):
        return float("inf")
    if not finite.any():
        return 0.0
    diff = float(np.abs(out64[finite] - ref64[finite]).max())
    scale = float(np.abs(ref64[finite]).max())
    return diff / scale if scale > 0 else diff


def assert_outputs_match(label: str, outs: Sequence[np.ndarray], refs: Sequence[np.ndarray],
                         tol: float = TOLERANCE):
    """Float outputs: relative max error <= tol; integer/bool outputs: exact."""
    assert len(outs) == len(refs), (
        f"[{label}] kiln produced {len(outs)} outputs, eager PyTorch {len(refs)}")
    for i, (out, ref) in enumerate(zip(outs, refs)):
        where = f"[{label}] output {i} (expected shape {list(ref.shape)}, dtype {ref.dtype})"
        assert out.shape == ref.shape, f"{where}: kiln shape {list(out.shape)}"
        assert out.dtype == ref.dtype, f"{where}: kiln dtype {out.dtype}"
        if np.issubdtype(ref.dtype, np.floating):
            err = relative_max_error(out, ref)
            if err > tol:
                worst = np.unravel_index(
                    np.argmax(np.abs(np.nan_to_num(out.astype(np.float64) - ref.astype(np.float64),
                                                   nan=np.inf, posinf=np.inf, neginf=np.inf))),
                    ref.shape) if ref.ndim else ()
                raise AssertionError(
                    f"{where}: relative max error {err:.3e} > tolerance {tol:g} "
                    f"(worst at index {tuple(int(w) for w in worst)}: "
                    f"kiln {out[worst]!r}, eager {ref[worst]!r})")
        else:
            if not np.array_equal(out, ref):
                bad = np.argwhere(out != ref)
                first = tuple(int(v) for v in bad[0]) if bad.size else ()
                raise AssertionError(
                    f"{where}: {len(bad)} elements differ, exact equality required "
                    f"(first at {first}: kiln {out[first]!r}, eager {ref[first]!r})")


# --------------------------------------------------------------------------- file layout

HEADER_SIZE = 64
HEADER_FIELDS = ("magic", "format_version", "header_size", "flatbuffer_offset",
                 "flatbuffer_size", "segments_offset", "segments_size", "file_size", "reserved")


def read_header(data: bytes) -> dict:
    values = struct.unpack_from("<8sIIQQQQQQ", data, 0)
    return dict(zip(HEADER_FIELDS, values))


def fnv1a64(data: bytes) -> int:
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


class FlatTable:
    """Minimal read-only flatbuffers table access (enough for Program.segments)."""

    def __init__(self, buf: bytes, pos: int):
        self.buf = buf
        self.pos = pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable = vtable
        self.vtable_size = struct.unpack_from("<H", buf, vtable)[0]

    def _field_pos(self, index: int) -> Optional[int]:
        entry = 4 + 2 * index
        if entry >= self.vtable_size:
            return None
        off = struct.unpack_from("<H", self.buf, self.vtable + entry)[0]
        return self.pos + off if off else None

    def scalar(self, index: int, fmt: str, default=0):
        p = self._field_pos(index)
        return default if p is None else struct.unpack_from("<" + fmt, self.buf, p)[0]

    def table_vector(self, index: int) -> List["FlatTable"]:
        p = self._field_pos(index)
        if p is None:
            return []
        vec = p + struct.unpack_from("<I", self.buf, p)[0]
        n = struct.unpack_from("<I", self.buf, vec)[0]
        out = []
        for i in range(n):
            elem = vec + 4 + 4 * i
            out.append(FlatTable(self.buf, elem + struct.unpack_from("<I", self.buf, elem)[0]))
        return out


def read_segments(data: bytes) -> List[dict]:
    """Program.segments (offset, size, hash) from a program file, per program.fbs
    (Program fields: version 0, methods 1, segments 2; Segment: offset, size, hash)."""
    h = read_header(data)
    fb = data[h["flatbuffer_offset"]:h["flatbuffer_offset"] + h["flatbuffer_size"]]
    root = FlatTable(fb, struct.unpack_from("<I", fb, 0)[0])
    return [dict(offset=s.scalar(0, "Q"), size=s.scalar(1, "Q"), hash=s.scalar(2, "Q"))
            for s in root.table_vector(2)]
