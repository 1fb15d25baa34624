"""KV cache end to end (docs/llm.md §1-§2): program state, cache writes, cached attention.

A small Llama-like decoder (2 layers, grouped-query attention 4 query / 2 kv heads,
RoPE, SwiGLU, RMSNorm) is exported the way docs/llm.md describes: methods `prefill`
(tokens [1, C=12]) and `decode` (tokens [1, 1]), both with `start_pos` i64 [1], the
caches as buffers `k_cache_{j}` / `v_cache_{j}` [1, Hkv, S=32, D] written with
`index_copy_` and read with `torch.ops.kiln.cached_attention` (python/kiln/ops.py).

One `kiln run` process runs a sequence of calls (`--then`), so the caches carry
over: two prefill chunks then five decode steps, each call's logits compared with
the eager module (its own buffers) run step by step; relative max error <= 1e-4.
Also: metadata and asset round trip, states outside the memory plan, the file
reader rejecting a corrupt asset, a cache write past the capacity failing cleanly,
and the front end's errors for a nonzero initial buffer and other in-place ops.
"""
import json
import os
import shutil
import struct
import sys
import warnings

import numpy as np
import pytest
import torch

import harness

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))
import kiln.ops  # noqa: E402,F401  (registers torch.ops.kiln.cached_attention)
import kiln.torchscript  # noqa: E402

VOCAB, DIM, LAYERS, HEADS, KV_HEADS, FFN = 64, 32, 2, 4, 2, 64
HEAD_DIM = DIM // HEADS
CHUNK = 12  # more positions than kMaxRank (8): a chunk is not a shape list
TOLERANCE = 1e-4


class RMSNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(1.0 + 0.1 * torch.randn(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_norm = RMSNorm(DIM)
        self.wq = torch.nn.Linear(DIM, HEADS * HEAD_DIM, bias=False)
        self.wk = torch.nn.Linear(DIM, KV_HEADS * HEAD_DIM, bias=False)
        self.wv = torch.nn.Linear(DIM, KV_HEADS * HEAD_DIM, bias=False)
        self.wo = torch.nn.Linear(HEADS * HEAD_DIM, DIM, bias=False)
        self.ffn_norm = RMSNorm(DIM)
        self.w1 = torch.nn.Linear(DIM, FFN, bias=False)
        self.w3 = torch.nn.Linear(DIM, FFN, bias=False)
        self.w2 = torch.nn.Linear(FFN, DIM, bias=False)


class CachedDecoder(torch.nn.Module):
    """The export structure of docs/llm.md §1, with caches on the top module."""

    def __init__(self, max_seq):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, DIM)
        self.blocks = torch.nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = RMSNorm(DIM)
        self.head = torch.nn.Linear(DIM, VOCAB, bias=False)
        inv = 1.0 / (10000.0 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
        # The RoPE table is longer than the cache, so that a position past the
        # cache reaches the cache write (test_cache_write_out_of_range).
        angles = torch.outer(torch.arange(2 * max_seq).float(), inv)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("rope_cos", angles.cos())
        self.register_buffer("rope_sin", angles.sin())
        for j in range(LAYERS):
            self.register_buffer(f"k_cache_{j}", torch.zeros(1, KV_HEADS, max_seq, HEAD_DIM))
            self.register_buffer(f"v_cache_{j}", torch.zeros(1, KV_HEADS, max_seq, HEAD_DIM))

    def step(self, tokens, start_pos):
        t = tokens.shape[1]
        positions = start_pos + torch.arange(t)
        cos = self.rope_cos.index_select(0, positions)
        sin = self.rope_sin.index_select(0, positions)
        x = self.embed(tokens)
        for j, block in enumerate(self.blocks):
            h = block.attn_norm(x)
            q = block.wq(h).view(1, t, HEADS, HEAD_DIM).transpose(1, 2)
            k = block.wk(h).view(1, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
            v = block.wv(h).view(1, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k_cache = getattr(self, f"k_cache_{j}")
            v_cache = getattr(self, f"v_cache_{j}")
            k_cache.index_copy_(2, positions, k)
            v_cache.index_copy_(2, positions, v)
            o = torch.ops.kiln.cached_attention(q, k_cache, v_cache, start_pos,
                                                1.0 / HEAD_DIM ** 0.5)
            x = x + block.wo(o.transpose(1, 2).reshape(1, t, HEADS * HEAD_DIM))
            h = block.ffn_norm(x)
            x = x + block.w2(torch.nn.functional.silu(block.w1(h)) * block.w3(h))
        return self.head(self.norm(x))

    def prefill(self, tokens, start_pos):
        return self.step(tokens, start_pos)

    def decode(self, tokens, start_pos):
        return self.step(tokens, start_pos)

    def reset(self):
        for name, buffer in self.named_buffers():
            if "_cache_" in name:
                buffer.zero_()


def examples():
    return {"prefill": (torch.zeros(1, CHUNK, dtype=torch.long), torch.tensor([0])),
            "decode": (torch.zeros(1, 1, dtype=torch.long), torch.tensor([CHUNK]))}


def export(path, max_seq, zero_caches=True, seed=0):
    """Traces both methods and saves the archive with its input specs. Tracing runs
    the methods (writing the caches), so the caches are zeroed before saving."""
    torch.manual_seed(seed)
    model = CachedDecoder(max_seq).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace_module(model, examples(), check_trace=False)
    if zero_caches:
        model.reset()  # the traced module shares the buffers
    kiln.torchscript.save(traced, path, methods=examples())
    model.reset()
    return model


def compile_program(label, pt, out, extra=()):
    proc = harness.compile_model(pt, out, extra=["-q"] + list(extra))
    assert proc.returncode == 0, f"[{label}] kiln compile failed\n{harness.describe(proc)}"
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kv_cache"))


@pytest.fixture(scope="module")
def exported(workdir):
    pt = os.path.join(workdir, "decoder.pt")
    model = export(pt, max_seq=32)
    out = compile_program("decoder", pt, os.path.join(workdir, "decoder.kiln"))
    return model, pt, out


def run_sequence(program, calls, workdir):
    """One `kiln run` process for a list of (method, [arrays]) calls; returns each
    call's outputs. Fails with the tool's message on error."""
    in_dir = os.path.join(workdir, "seq_in")
    out_dir = os.path.join(workdir, "seq_out")
    for d in (in_dir, out_dir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    args = [harness.binary("kiln-runtime"), "run", program]
    for k, (method, arrays) in enumerate(calls):
        if k:
            args.append("--then")
        args += ["--method", method]
        for i, a in enumerate(arrays):
            path = os.path.join(in_dir, f"call{k}_input{i}.npy")
            np.save(path, a)
            args += ["--input", path]
    args += ["--output-dir", out_dir]
    proc = harness.run_tool(args)
    return proc, out_dir


def test_prefill_and_decode_match_eager(exported, workdir):
    model, _, program = exported
    rng = np.random.default_rng(7)
    prompt = rng.integers(0, VOCAB, size=2 * CHUNK)
    calls = [("prefill", [prompt[None, :CHUNK].astype(np.int64), np.array([0], np.int64)]),
             ("prefill", [prompt[None, CHUNK:].astype(np.int64), np.array([CHUNK], np.int64)])]
    for step in range(5):
        token = int(rng.integers(0, VOCAB))
        calls.append(("decode", [np.array([[token]], np.int64),
                                 np.array([2 * CHUNK + step], np.int64)]))
    proc, out_dir = run_sequence(program, calls, workdir)
    assert proc.returncode == 0, f"kiln run of {len(calls)} calls failed\n{harness.describe(proc)}"

    model.reset()
    with torch.no_grad():
        for k, (method, (tokens, start)) in enumerate(calls):
            ref = getattr(model, method)(torch.from_numpy(tokens), torch.from_numpy(start)).numpy()
            out = np.load(os.path.join(out_dir, f"step{k}.output0.npy"))
            assert out.shape == ref.shape, (
                f"call {k} ({method} at {int(start[0])}): logits shape {out.shape}, "
                f"eager {ref.shape}")
            err = harness.relative_max_error(out, ref)
            assert err <= TOLERANCE, (
                f"call {k} ({method} at start_pos {int(start[0])}): logits [1, {tokens.shape[1]}, "
                f"{VOCAB}] rel max err {err:.3g} > {TOLERANCE} vs eager PyTorch")
    # The state carried over: the last decode differs from the same call on fresh caches.
    last = np.load(os.path.join(out_dir, f"step{len(calls) - 1}.output0.npy"))
    fresh, fresh_dir = run_sequence(program, [calls[-1]], workdir)
    assert fresh.returncode == 0, harness.describe(fresh)
    alone = np.load(os.path.join(fresh_dir, "output0.npy"))
    assert not np.allclose(alone, last), "decode logits do not depend on the cached prefix"


def test_program_contents(exported):
    _, _, program = exported
    info = harness.inspect_json(program)
    states = {s["name"]: s for s in info["states"]}
    expected = {f"{kind}_cache_{j}" for kind in "kv" for j in range(LAYERS)}
    assert set(states) == expected, f"states {sorted(states)}, expected {sorted(expected)}"
    for s in states.values():
        assert s["dtype"] == "f32" and s["shape"] == [1, KV_HEADS, 32, HEAD_DIM], s
        assert s["bytes"] == 4 * KV_HEADS * 32 * HEAD_DIM, s
    for method in ("prefill", "decode"):
        ops = info["methods"][method]["ops"]
        assert ops.get("cache_write") == 2 * LAYERS, f"{method} ops {ops}"
        assert ops.get("cached_attention") == LAYERS, f"{method} ops {ops}"
        inputs = info["methods"][method]["inputs"]
        assert [i["dtype"] for i in inputs] == ["i64", "i64"], inputs


def test_states_are_not_in_the_memory_plan(exported, workdir):
    """The arena does not grow with the cache length S; only the state bytes do."""
    _, _, program = exported
    pt64 = os.path.join(workdir, "decoder64.pt")
    export(pt64, max_seq=64)
    program64 = compile_program("decoder S=64", pt64, os.path.join(workdir, "decoder64.kiln"))
    a, b = harness.inspect_json(program), harness.inspect_json(program64)
    for method in ("prefill", "decode"):
        arena32 = a["methods"][method]["arena_bytes"]
        arena64 = b["methods"][method]["arena_bytes"]
        assert arena32 > 0 and arena32 == arena64, (
            f"{method}: arena {arena32} bytes at S=32, {arena64} at S=64 (states must not be "
            f"planned)")
    assert b["state_bytes"] == 2 * a["state_bytes"], (a["state_bytes"], b["state_bytes"])


ASSET_BYTES = bytes(range(256)) * 3 + b"\x00kiln"


@pytest.fixture(scope="module")
def with_assets(exported, workdir):
    """The decoder compiled with metadata, a metadata file and two assets."""
    _, pt, _ = exported
    config = os.path.join(workdir, "config.json")
    with open(config, "w") as f:
        json.dump({"hidden_size": DIM, "note": "x" * 200}, f, indent=2)
    blob = os.path.join(workdir, "tokenizer.model")
    with open(blob, "wb") as f:
        f.write(ASSET_BYTES)
    empty = os.path.join(workdir, "empty.bin")
    open(empty, "wb").close()
    out = os.path.join(workdir, "meta.kiln")
    compile_program("metadata", pt, out, [
        "--metadata", "kiln.llm.max_seq_len=32", "--metadata", "kiln.llm.eos_token_ids=2,3",
        "--metadata", "kiln.llm.bos_token_id=", "--metadata-file", f"kiln.llm.config={config}",
        "--asset", f"tokenizer={blob}", "--asset", f"empty={empty}"])
    return out, config


def test_metadata_and_assets_round_trip(with_assets):
    out, config = with_assets
    info = harness.inspect_json(out)
    meta = info["metadata"]
    assert meta["kiln.llm.max_seq_len"] == "32" and meta["kiln.llm.eos_token_ids"] == "2,3"
    assert meta["kiln.llm.bos_token_id"] == ""
    with open(config) as f:
        assert meta["kiln.llm.config"] == f.read()
    assets = {a["name"]: a["bytes"] for a in info["assets"]}
    assert assets == {"tokenizer": len(ASSET_BYTES), "empty": 0}, assets
    # The bytes themselves: the asset's segment in the file.
    with open(out, "rb") as f:
        raw = f.read()
    assert ASSET_BYTES in raw
    text = harness.run_tool([harness.binary("kiln-runtime"), "inspect", out])
    assert text.returncode == 0, harness.describe(text)
    assert f"asset tokenizer: {len(ASSET_BYTES)} bytes" in text.stdout, text.stdout
    config_line = [l for l in text.stdout.splitlines() if l.startswith("metadata kiln.llm.config")]
    assert config_line and len(config_line[0]) < 120 and "bytes)" in config_line[0], config_line


def test_compile_flag_errors(exported, workdir):
    _, pt, _ = exported
    for extra, message in [(["--asset", "tok=/nonexistent/tokenizer.model"], "cannot read"),
                           (["--metadata-file", "k=/nonexistent/config.json"], "cannot read"),
                           (["--metadata", "novalue"], "expected KEY=VALUE"),
                           (["--asset", "a=" + pt, "--asset", "a=" + pt], "given twice")]:
        out = os.path.join(workdir, "bad_flags.kiln")
        proc = harness.compile_model(pt, out, extra=["-q"] + extra)
        assert proc.returncode != 0 and message in proc.stderr, harness.describe(proc)
        assert not os.path.exists(out), f"{extra}: output written despite the error"


def asset_segment_field(data):
    """Absolute file offset of Program.assets[0].segment (Program field 5, Asset field 1)."""
    h = harness.read_header(data)
    base = h["flatbuffer_offset"]
    fb = data[base:base + h["flatbuffer_size"]]
    root = harness.FlatTable(fb, struct.unpack_from("<I", fb, 0)[0])
    assets = root.table_vector(5)
    assert assets, "the program has no assets"
    pos = assets[0]._field_pos(1)
    assert pos is not None, "asset 0 has no segment field"
    return base + pos


def test_corrupt_asset_segment_is_rejected(with_assets, workdir):
    good, _ = with_assets
    with open(good, "rb") as f:
        data = bytearray(f.read())
    pos = asset_segment_field(bytes(data))
    struct.pack_into("<i", data, pos, 9999)
    bad = os.path.join(workdir, "asset_corrupt.kiln")
    with open(bad, "wb") as f:
        f.write(data)
    for tool in ("kiln", "kiln-runtime"):
        proc = harness.run_tool([harness.binary(tool), "inspect", bad])
        assert proc.returncode != 0, f"{tool} inspect accepted a corrupt asset\n{harness.describe(proc)}"
        assert "asset 0 (tokenizer): segment index 9999 is out of range" in proc.stderr, \
            harness.describe(proc)
    proc = harness.run_tool([harness.binary("kiln-runtime"), "run", bad, "--method", "decode",
                             "--output-dir", os.path.join(workdir, "corrupt_out")])
    assert proc.returncode == 1 and "segment index 9999" in proc.stderr, harness.describe(proc)


def test_cache_write_out_of_range(exported, workdir):
    _, _, program = exported
    calls = [("decode", [np.array([[1]], np.int64), np.array([32], np.int64)])]
    proc, out_dir = run_sequence(program, calls, workdir)
    assert proc.returncode == 1, harness.describe(proc)
    assert "position 32 is out of range for the cache capacity 32" in proc.stderr, \
        harness.describe(proc)
    assert "cache_write" in proc.stderr, harness.describe(proc)
    assert os.listdir(out_dir) == [], "outputs written despite the error"
    # A good call after a bad one in the same sequence: all or nothing.
    calls = [("decode", [np.array([[1]], np.int64), np.array([0], np.int64)])] + calls
    proc, out_dir = run_sequence(program, calls, workdir)
    assert proc.returncode == 1 and "call 1 (decode)" in proc.stderr, harness.describe(proc)
    assert os.listdir(out_dir) == [], "outputs written despite the error"


def test_nonzero_initial_state_is_rejected(workdir):
    pt = os.path.join(workdir, "dirty.pt")
    export(pt, max_seq=32, zero_caches=False)
    out = os.path.join(workdir, "dirty.kiln")
    proc = harness.compile_model(pt, out, extra=["-q"])
    assert proc.returncode != 0, harness.describe(proc)
    assert "program state 'k_cache_0'" in proc.stderr and "starts at zero" in proc.stderr, \
        harness.describe(proc)
    assert not os.path.exists(out)


class OtherInPlace(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("acc", torch.zeros(4))

    def forward(self, x):
        self.acc.add_(x)
        return self.acc * 2


def test_other_in_place_op_on_state_is_rejected(workdir):
    model = OtherInPlace()
    with torch.no_grad():
        traced = torch.jit.trace(model, (torch.ones(4),), check_trace=False)
    model.acc.zero_()
    pt = os.path.join(workdir, "inplace.pt")
    kiln.torchscript.save(traced, pt, example_inputs=(torch.ones(4),))
    out = os.path.join(workdir, "inplace.kiln")
    proc = harness.compile_model(pt, out, extra=["-q"])
    assert proc.returncode != 0, harness.describe(proc)
    assert "aten::add_" in proc.stderr and "only index_copy_" in proc.stderr, harness.describe(proc)
    assert not os.path.exists(out)


def test_reference_op_matches_dense_attention():
    """python/kiln/ops.py's reference against a dense masked formulation."""
    torch.manual_seed(3)
    q = torch.randn(1, 4, 3, 8)
    k = torch.randn(1, 2, 10, 8)
    v = torch.randn(1, 2, 10, 8)
    start = torch.tensor([5])
    out = torch.ops.kiln.cached_attention(q, k, v, start, 0.3)
    kr, vr = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    scores = (q @ kr.transpose(-1, -2)) * 0.3
    pos = torch.arange(10)[None, :] <= (5 + torch.arange(3))[:, None]
    ref = torch.softmax(scores.masked_fill(~pos, float("-inf")), -1) @ vr
    assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()
    kiln.ops.register()  # idempotent
