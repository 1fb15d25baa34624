"""Corrupt program files (truncated, bytes flipped) must be rejected with exit code 1
and a message: never a crash (negative exit code = signal), never a hang.

Regions (docs/program-format.md): the 64-byte header, the flatbuffer at
header.flatbuffer_offset, then the constant segments. Expectations per region:
- truncation anywhere, and a flip in any header field except `reserved`: exit 1;
- a flip in the flatbuffer's root offset or file identifier (its first 8 bytes): exit 1;
- a flip inside a constant segment's bytes: exit 1 (segment hash checked at load);
- a flip elsewhere (other flatbuffer bytes: names, source locations, float attribute
  payloads, alignment padding; padding between segments; `reserved`) may legitimately
  load and run, so exit 0 or 1, but never a crash or a hang.
Every case runs through `kiln-runtime run`; `kiln-runtime inspect` gets every third
case, `kiln run` and `kiln inspect` every sixteenth (each start of `kiln` loads
LibTorch, ~0.5-1 s; they share the runtime's loader).
"""
import os
import pathlib
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import subprocess

import harness
import models

TIMEOUT = 10
FLIPS_PER_REGION = 120


@pytest.fixture(scope="module")
def program(programs, tmp_path_factory):
    path = programs.get("mlp", models.make_mlp(), [models.mlp_input(4)])
    data = open(path, "rb").read()
    header = harness.read_header(data)
    assert header["magic"] == b"KILNPRG\0" and header["file_size"] == len(data), header
    segments = harness.read_segments(data)
    assert segments, "the MLP program has no constant segments"
    root = tmp_path_factory.mktemp("corrupt")
    inp = str(root / "input.npy")
    np.save(inp, models.mlp_input(2))
    return dict(path=path, data=data, header=header, segments=segments, root=root, input=inp)


def command(tool_cmd, program_path, input_path, out_dir):
    tool, sub = tool_cmd
    if sub == "run":
        return [harness.binary(tool), "run", program_path, "--input", input_path, "--output-dir", out_dir]
    return [harness.binary(tool), "inspect", program_path, "--json"]


def run_cases(program, cases, tool_cmd):
    """cases: list of (label, bytes, strict). Returns a list of failure descriptions."""
    root = pathlib.Path(tempfile.mkdtemp(prefix=f"{tool_cmd[0]}-{tool_cmd[1]}-", dir=program["root"]))
    jobs = []
    for n, (label, data, strict) in enumerate(cases):
        case_dir = root / str(n)
        case_dir.mkdir()
        path = case_dir / "p.kiln"
        path.write_bytes(data)
        out_dir = case_dir / "out"
        out_dir.mkdir()
        jobs.append((label, strict, command(tool_cmd, str(path), program["input"], str(out_dir)), out_dir))

    def one(job):
        label, strict, cmd, out_dir = job
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, errors="replace", timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"{label}: TIMEOUT after {TIMEOUT}s"
        rc = proc.returncode
        err = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else []
        if rc < 0:
            return f"{label}: killed by signal {-rc} {err}"
        if rc not in (0, 1):
            return f"{label}: exit code {rc} (expected 0 or 1) {err}"
        if strict and rc != 1:
            return f"{label}: exit code {rc}, expected 1 (corruption not detected)"
        if rc == 1 and not proc.stderr.strip():
            return f"{label}: exit code 1 without a message"
        if rc == 1 and os.listdir(out_dir):
            return f"{label}: failed but wrote outputs {os.listdir(out_dir)}"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        return [r for r in pool.map(one, jobs) if r]


def truncation_cases(program):
    data = program["data"]
    lengths = list(range(0, harness.HEADER_SIZE + 1))
    lengths += sorted(set(int(v) for v in np.linspace(harness.HEADER_SIZE + 1, len(data) - 1, 60)))
    return [(f"truncated to {n} of {len(data)} bytes", data[:n], True) for n in lengths]


def flip_cases(program):
    data, h, segs = program["data"], program["header"], program["segments"]
    rng = np.random.default_rng(1234)
    fb_start, fb_end = h["flatbuffer_offset"], h["flatbuffer_offset"] + h["flatbuffer_size"]
    seg_start = h["segments_offset"]
    seg_bytes = set()
    for s in segs:
        seg_bytes.update(range(seg_start + s["offset"], seg_start + s["offset"] + s["size"]))

    def region(pos):
        if pos < 56:
            return "header", True
        if pos < 64:
            return "header.reserved", False
        if fb_start <= pos < fb_end:
            return "flatbuffer", pos < fb_start + 8
        if pos in seg_bytes:
            return "segment data", True
        return "padding", False

    positions = list(range(harness.HEADER_SIZE))
    positions += sorted(rng.choice(np.arange(fb_start, fb_end), min(FLIPS_PER_REGION, fb_end - fb_start),
                                   replace=False).tolist())
    positions += sorted(rng.choice(np.arange(seg_start, len(data)),
                                   min(FLIPS_PER_REGION, len(data) - seg_start), replace=False).tolist())
    cases = []
    for pos in positions:
        mask = int(rng.integers(1, 256))
        corrupt = bytearray(data)
        corrupt[pos] ^= mask
        name, strict = region(pos)
        cases.append((f"byte {pos} ({name}) ^= 0x{mask:02x}", bytes(corrupt), strict))
    return cases


TOOLS = [("kiln-runtime", "run"), ("kiln", "run"), ("kiln", "inspect"), ("kiln-runtime", "inspect")]


def subset(cases, tool_cmd):
    step = {("kiln-runtime", "run"): 1, ("kiln-runtime", "inspect"): 3}.get(tool_cmd, 16)
    return cases[::step]


@pytest.mark.parametrize("tool_cmd", TOOLS, ids=lambda t: f"{t[0]} {t[1]}")
def test_truncated_programs(program, tool_cmd):
    cases = subset(truncation_cases(program), tool_cmd)
    failures = run_cases(program, cases, tool_cmd)
    assert not failures, (f"{len(failures)} of {len(cases)} truncated programs mishandled by "
                          f"{' '.join(tool_cmd)}:\n" + "\n".join(failures[:40]))


@pytest.mark.parametrize("tool_cmd", TOOLS, ids=lambda t: f"{t[0]} {t[1]}")
def test_flipped_bytes(program, tool_cmd):
    cases = subset(flip_cases(program), tool_cmd)
    failures = run_cases(program, cases, tool_cmd)
    assert not failures, (f"{len(failures)} of {len(cases)} corrupted programs mishandled by "
                          f"{' '.join(tool_cmd)}:\n" + "\n".join(failures[:40]))


def test_intact_program_runs(program, tmp_path):
    """Control: the uncorrupted file runs with each tool (so failures above are real)."""
    for tool in ("kiln-runtime", "kiln"):
        out = harness.run_ok(f"intact mlp via {tool}", program["path"], [models.mlp_input(2)],
                             str(tmp_path / tool), tool=tool, expected_outputs=1)
        harness.assert_outputs_match(f"intact mlp via {tool}", out,
                                     harness.eager(models.make_mlp(), [models.mlp_input(2)]))
