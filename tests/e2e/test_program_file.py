"""The program file, read independently of the C++ reader (docs/program-format.md):
header fields, flatbuffer identifier, 64-byte aligned hashed segments, deduplicated
constants (tied embeddings, weights shared by two methods), deterministic output."""
import os
import re

import numpy as np
import pytest
import torch

import harness
import models


def check_layout(label, path):
    data = open(path, "rb").read()
    h = harness.read_header(data)
    assert h["magic"] == b"KILNPRG\0", f"[{label}] magic {h['magic']!r}"
    assert h["format_version"] == 2, f"[{label}] format_version {h['format_version']}"
    assert h["header_size"] == 64 and h["flatbuffer_offset"] == 64, f"[{label}] {h}"
    assert h["file_size"] == len(data), f"[{label}] header file_size {h['file_size']} != {len(data)}"
    assert h["reserved"] == 0, f"[{label}] reserved {h['reserved']}"
    fb_end = h["flatbuffer_offset"] + h["flatbuffer_size"]
    assert h["flatbuffer_size"] > 8 and fb_end <= h["segments_offset"], f"[{label}] {h}"
    assert h["segments_offset"] % 64 == 0, f"[{label}] segments_offset {h['segments_offset']}"
    assert h["segments_offset"] + h["segments_size"] <= len(data), f"[{label}] {h}"
    assert data[68:72] == b"KILN", f"[{label}] flatbuffer identifier {data[68:72]!r}"
    segments = harness.read_segments(data)
    for i, s in enumerate(segments):
        where = f"[{label}] segment {i} {s}"
        assert s["offset"] % 64 == 0, f"{where}: offset not a multiple of 64"
        assert s["offset"] + s["size"] <= h["segments_size"], f"{where}: runs past the segment area"
        start = h["segments_offset"] + s["offset"]
        assert harness.fnv1a64(data[start:start + s["size"]]) == s["hash"], f"{where}: hash mismatch"
    return data, h, segments


def assert_no_duplicate_segments(label, data, h, segments):
    seen = {}
    for i, s in enumerate(segments):
        start = h["segments_offset"] + s["offset"]
        key = (s["size"], data[start:start + s["size"]])
        if s["size"] >= 64:  # the ones that matter for size; tiny scalars are irrelevant
            assert key not in seen, f"[{label}] segments {seen[key]} and {i} hold the same {s['size']} bytes"
            seen[key] = i


def state_bytes(module):
    """Bytes of all distinct parameter and buffer tensors (tied weights counted once)."""
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


@pytest.mark.parametrize("name", ["mlp", "llama", "gpt2"])
def test_layout(programs, name):
    model, example = {
        "mlp": (models.make_mlp, [models.mlp_input(4)]),
        "llama": (models.make_llama, [models.llama_tokens(8)]),
        "gpt2": (models.make_gpt2, [models.gpt2_tokens(8)]),
    }[name]
    check_layout(name, programs.get(name, model(), example))


def test_tied_embedding_stored_once(programs):
    model = models.make_llama()
    path = programs.get("llama", model, [models.llama_tokens(8)])
    data, h, segments = check_layout("llama", path)
    assert_no_duplicate_segments("llama", data, h, segments)
    embed_bytes = model.embed.weight.numel() * 4
    stored = sum(s["size"] for s in segments)
    assert stored < state_bytes(model) + embed_bytes, (
        f"llama constants take {stored} bytes: the tied embedding ({embed_bytes} bytes) is stored "
        f"twice (distinct weights total {state_bytes(model)} bytes)")


def test_two_methods_share_weights(tmp_path):
    model = models.make_two_methods()
    x = torch.zeros(2, 16)
    traced = torch.jit.trace_module(model, {"forward": (x,), "other": (x, torch.zeros(2, 4))})
    pt, program = str(tmp_path / "two.pt"), str(tmp_path / "two.kiln")
    traced.save(pt)
    harness.compile_ok("two_methods", pt, program)
    data, h, segments = check_layout("two_methods", program)
    assert_no_duplicate_segments("two_methods", data, h, segments)
    stored = sum(s["size"] for s in segments)
    assert stored < 2 * state_bytes(model), (
        f"two methods store {stored} bytes of constants for {state_bytes(model)} bytes of weights")


def test_compile_is_deterministic(tmp_path):
    pt = str(tmp_path / "llama.pt")
    harness.trace(models.make_llama(), [models.llama_tokens(8)]).save(pt)
    a, b = str(tmp_path / "a.kiln"), str(tmp_path / "b.kiln")
    harness.compile_ok("llama (1st)", pt, a)
    harness.compile_ok("llama (2nd)", pt, b)
    da, db = open(a, "rb").read(), open(b, "rb").read()
    if da != db:
        first = next((i for i in range(min(len(da), len(db))) if da[i] != db[i]), min(len(da), len(db)))
        pytest.fail(f"two compiles of the same model differ: sizes {len(da)} / {len(db)}, "
                    f"first difference at byte {first}")


def test_no_temporary_files_left(tmp_path):
    pt = str(tmp_path / "mlp.pt")
    harness.trace(models.make_mlp(), [models.mlp_input(2)]).save(pt)
    harness.compile_ok("mlp", pt, str(tmp_path / "mlp.kiln"))
    assert sorted(os.listdir(tmp_path)) == ["mlp.kiln", "mlp.pt"], os.listdir(tmp_path)
