"""`kiln export-hf` end to end: seeded random checkpoints in the published Hugging Face
layout (kiln.models.testing) -> program with prefill + decode -> `kiln run` prefill
logits and `kiln generate` greedy tokens against eager PyTorch (our own model with a
KV cache, itself checked against an independent reference in test_mobilellm_models.py).

Tolerances: fp32 prefill logits relative max error (max|a-b| / max|b|) <= 1e-4; greedy
tokens identical, except at a step where eager's top-2 logit margin < 1e-4 (a tie).
"""
import json
import os
import sys

import numpy as np
import pytest
import torch

import harness

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))

from kiln.models import build_config, tiny_config  # noqa: E402
from kiln.models.testing import write_checkpoint, write_random_checkpoint  # noqa: E402

torch.set_num_threads(1)  # eager decoding: one token at a time, threads only contend
TIE_MARGIN = 1e-4
EXPORT_TIMEOUT = 600


class Exported:
    def __init__(self, ckpt, out, model, args, proc):
        self.ckpt, self.out, self.model, self.args, self.proc = ckpt, out, model, args, proc


_cache = {}


def export(tmp_root, key, config, args=(), seed=0, fmt="safetensors", shards=1):
    """Writes the checkpoint and runs `kiln export-hf` once per key (shared by tests)."""
    if key not in _cache:
        ckpt = os.path.join(tmp_root, key + "-ckpt")
        out = os.path.join(tmp_root, key + ".kiln")
        model = write_random_checkpoint(ckpt, config, seed=seed, fmt=fmt, shards=shards)
        # The program computes with the stored (16-bit rounded) weights: compare with those.
        from kiln.models import load_model
        model = load_model(ckpt)
        proc = harness.run_tool([harness.binary("kiln"), "export-hf", ckpt, "-o", out] + list(args),
                                timeout=EXPORT_TIMEOUT)
        assert proc.returncode == 0, harness.describe(proc)
        assert os.path.isfile(out)
        _cache[key] = Exported(ckpt, out, model, list(args), proc)
    return _cache[key]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    _cache.clear()
    yield str(tmp_path_factory.mktemp("mobilellm"))
    _cache.clear()


def prefill_logits(program, tokens, start_pos, tmp_path):
    tp, sp, od = tmp_path / "tokens.npy", tmp_path / "start.npy", tmp_path / "out"
    np.save(tp, np.array([tokens], dtype=np.int64))
    np.save(sp, np.array([start_pos], dtype=np.int64))
    proc = harness.run_tool([harness.binary("kiln"), "run", program, "--method", "prefill",
                             "--input", tp, "--input", sp, "--output-dir", od])
    assert proc.returncode == 0, harness.describe(proc)
    return np.load(od / "output0.npy")


def generate_ids(program, prompt, n, extra=()):
    proc = harness.run_tool([harness.binary("kiln"), "generate", program, "--prompt-tokens",
                             ",".join(map(str, prompt)), "-n", str(n), "--print-token-ids",
                             "--ignore-eos"] + list(extra), timeout=300)
    assert proc.returncode == 0, harness.describe(proc)
    return [int(x) for x in proc.stdout.split()]


def check_prefill(ex, chunk, tmp_path, what):
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, ex.model.config.vocab_size, (chunk,), generator=g).tolist()
    got = prefill_logits(ex.out, tokens, 0, tmp_path)
    with torch.no_grad():
        want = ex.model(torch.tensor([tokens])).numpy()
    assert got.shape == want.shape, f"{what}: prefill logits shape {got.shape} != {want.shape}"
    rel = float(np.abs(got - want).max() / np.abs(want).max())
    assert rel <= 1e-4, f"{what}: prefill logits [1,{chunk},V] relative max error {rel:.3g} > 1e-4"
    return rel


def check_greedy(ex, prompt, n, what):
    want, margins, _ = ex.model.generate_greedy(prompt, n)
    got = generate_ids(ex.out, prompt, n)
    assert len(got) == n, f"{what}: kiln generate gave {len(got)} tokens, expected {n}"
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            if margins[i] < TIE_MARGIN:
                print(f"{what}: tie at step {i} (eager top-2 margin {margins[i]:.2g})")
                return "tie"
            pytest.fail(f"{what}: prompt of {len(prompt)} tokens: greedy tokens diverge at step "
                        f"{i}: expected {b}, got {a} (eager top-2 margin {margins[i]:.3g})\n"
                        f"expected {want}\ngot      {got}", pytrace=False)
    return "identical"


# ------------------------------------------------------------ tiny, every family

TINY_ARGS = ["--max-seq-len", "48", "--prefill-chunk", "16"]


@pytest.mark.parametrize("family", ["mobilellm", "mobilellm-ls", "mobilellm-r1"])
def test_tiny_prefill_parity(root, tmp_path, family):
    ex = export(root, "tiny-" + family, tiny_config(family), TINY_ARGS, seed=11)
    check_prefill(ex, 16, tmp_path, family)


@pytest.mark.parametrize("family", ["mobilellm", "mobilellm-ls", "mobilellm-r1"])
@pytest.mark.parametrize("plen", [1, 5, 16, 29])
def test_tiny_greedy_matches_eager_kv_cache(root, family, plen):
    ex = export(root, "tiny-" + family, tiny_config(family), TINY_ARGS, seed=11)
    prompt = torch.randint(1, 256, (plen,), generator=torch.Generator().manual_seed(plen)).tolist()
    check_greedy(ex, prompt, 48 - plen, f"{family} tiny")


@pytest.mark.parametrize("family", ["mobilellm", "mobilellm-ls", "mobilellm-r1"])
def test_tiny_rope_is_fused(root, family):
    """kiln-fuse turns each q/k RoPE (index_select by perm, 2 mul, add) into one
    rope_perm, rotate-half and R1's interleaved pairs alike; only the cos/sin row
    gathers stay index_selects."""
    ex = export(root, "tiny-" + family, tiny_config(family), TINY_ARGS, seed=11)
    info = json.loads(harness.run_tool([harness.binary("kiln"), "inspect", ex.out,
                                        "--json"]).stdout)
    for m in ("prefill", "decode"):
        ops = info["methods"][m]["ops"]
        layers = ops["cached_attention"]
        assert layers >= 2 and ops.get("rope_perm", 0) == 2 * layers, (family, m, ops)
        assert ops.get("index_select", 0) == 2, (family, m, ops)


def test_tiny_verify_and_report(root, tmp_path):
    family = "mobilellm-r1"
    ckpt = export(root, "tiny-" + family, tiny_config(family), TINY_ARGS, seed=11).ckpt
    out, rep = tmp_path / "v.kiln", tmp_path / "report.json"
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", ckpt, "-o", out, "--verify",
                             "--verify-tokens", "20", "--report", rep] + TINY_ARGS, timeout=300)
    assert proc.returncode == 0, harness.describe(proc)
    for phase in ("loading", "tracing", "compiling", "verif"):
        assert f"export-hf: {phase}" in proc.stderr, proc.stderr
    r = json.loads(rep.read_text())
    assert r["family"] == family and r["max_seq_len"] == 48 and r["prefill_chunk"] == 16
    assert r["verify"]["status"] == "ok"
    assert r["verify"]["prefill"]["rel_max_err"] <= 1e-4
    assert len(r["verify"]["greedy"]) >= 2
    assert r["file_bytes"] == os.path.getsize(out)
    for phase in ("load", "trace", "compile", "verify", "total"):
        assert r["timings_s"][phase] >= 0
    assert r["sizes"]["file_bytes"] == r["file_bytes"] and r["sizes"]["state_bytes"] > 0
    for m in ("prefill", "decode"):
        assert r["methods_summary"][m]["ops"]["cached_attention"] == 2
        assert r["methods_summary"][m]["arena_bytes"] > 0


def test_tiny_quantized_verify(root, tmp_path):
    ckpt = export(root, "tiny-mobilellm", tiny_config("mobilellm"), TINY_ARGS, seed=11).ckpt
    rep = tmp_path / "r.json"
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", ckpt, "-o",
                             tmp_path / "q.kiln", "--quantize", "int8", "--verify",
                             "--report", rep] + TINY_ARGS, timeout=300)
    assert proc.returncode == 0, harness.describe(proc)
    p = json.loads(rep.read_text())["verify"]["prefill"]
    assert p["min_cosine"] >= 0.99 and p["top1_agreement"] >= 0.9, p


def test_tiny_f16_kv_cache(root, tmp_path):
    """--kv-cache-dtype f16: the caches are f16 program state (half the bytes of the f32
    export's), and --verify holds the fp32 program to the fp32 tolerances against the
    export module with the same f16 cache run eagerly. The program's prefill logits are
    checked here against that module too (<= 1e-4 relative), and they differ from the
    plain model's by more (k and v really are rounded to half)."""
    ex = export(root, "tiny-mobilellm", tiny_config("mobilellm"), TINY_ARGS, seed=11)
    out, rep = tmp_path / "h.kiln", tmp_path / "r.json"
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", ex.ckpt, "-o", out,
                             "--kv-cache-dtype", "f16", "--verify", "--verify-tokens", "20",
                             "--report", rep] + TINY_ARGS, timeout=300)
    assert proc.returncode == 0, harness.describe(proc)
    assert "KV cache f16" in proc.stderr, proc.stderr
    r = json.loads(rep.read_text())
    assert r["kv_cache_dtype"] == "f16" and r["verify"]["status"] == "ok", r["verify"]
    assert r["verify"]["prefill"]["rel_max_err"] <= 1e-4, r["verify"]["prefill"]
    info32 = json.loads(harness.run_tool([harness.binary("kiln"), "inspect", ex.out,
                                          "--json"]).stdout)
    assert r["sizes"]["state_bytes"] * 2 == info32["state_bytes"], (r["sizes"], info32)

    from kiln.export_hf import LLMExportModule
    mod = LLMExportModule(ex.model, 48, torch.float16).eval()
    tokens = torch.randint(0, ex.model.config.vocab_size, (16,),
                           generator=torch.Generator().manual_seed(5)).tolist()
    got = prefill_logits(out, tokens, 0, tmp_path)
    with torch.no_grad():
        mod.reset_cache()
        want = mod.prefill(torch.tensor([tokens]), torch.tensor([0])).numpy()
        plain = ex.model(torch.tensor([tokens])).numpy()
    rel = float(np.abs(got - want).max() / np.abs(want).max())
    assert rel <= 1e-4, f"f16 KV cache: prefill logits [1,16,V] relative max error {rel:.3g}"
    rounding = float(np.abs(plain - want).max() / np.abs(want).max())
    assert rounding > 10 * max(rel, 1e-7), \
        f"the f16 cache changed the logits by only {rounding:.3g} (program error {rel:.3g})"


def test_bad_kv_cache_dtype(root, tmp_path):
    ex = export(root, "tiny-mobilellm", tiny_config("mobilellm"), TINY_ARGS, seed=11)
    out = tmp_path / "x.kiln"
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", ex.ckpt, "-o", out,
                             "--kv-cache-dtype", "int8"] + TINY_ARGS)
    assert proc.returncode == 1 and "--kv-cache-dtype" in proc.stderr, harness.describe(proc)
    assert not out.exists()


# ------------------------------------------------------------ errors

def test_missing_tensor_is_named(tmp_path):
    d = tiny_config("mobilellm")
    from kiln.models import init_random
    sd = init_random(d, 0).state_dict()
    del sd["model.layers.1.self_attn.k_proj.weight"]
    write_checkpoint(tmp_path / "ck", d, sd)
    out = tmp_path / "x.kiln"
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", tmp_path / "ck", "-o", out])
    assert proc.returncode == 1, harness.describe(proc)
    assert "missing tensor model.layers.1.self_attn.k_proj.weight" in proc.stderr, proc.stderr
    assert not out.exists()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".kiln")], "partial output left"


def test_unknown_model_type(tmp_path):
    d = tiny_config("mobilellm")
    from kiln.models import init_random
    sd = init_random(d, 0).state_dict()
    d["model_type"] = "mistral"
    write_checkpoint(tmp_path / "ck", d, sd)
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", tmp_path / "ck", "-o",
                             tmp_path / "x.kiln"])
    assert proc.returncode == 1, harness.describe(proc)
    assert "unsupported model_type 'mistral'" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.kiln").exists()


def test_bad_arguments(tmp_path):
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", tmp_path / "nope", "-o",
                             tmp_path / "x.kiln"])
    assert proc.returncode == 1 and "not a directory" in proc.stderr, harness.describe(proc)


def test_prompt_longer_than_cache(root):
    ex = export(root, "tiny-mobilellm", tiny_config("mobilellm"), TINY_ARGS, seed=11)
    proc = harness.run_tool([harness.binary("kiln"), "generate", ex.out, "--prompt-tokens",
                             ",".join(["5"] * 48), "-n", "4", "--print-token-ids"])
    assert proc.returncode != 0 and proc.returncode < 128, harness.describe(proc)
    assert "48" in proc.stderr and "max-seq-len" in proc.stderr, proc.stderr


# ------------------------------------------------------------ published sizes

SMALL_CHUNK = ["--max-seq-len", "128"]  # default prefill chunk: 64
SMALL_ARGS = SMALL_CHUNK + ["--verify", "--verify-tokens", "64", "--verify-prompts", "2"]


@pytest.mark.parametrize("name", ["125M", "LS-125M", "R1-140M"])
def test_published_small_models(root, tmp_path, name):
    ex = export(root, name, build_config(name), SMALL_ARGS + ["--report",
                os.path.join(root, name + ".json")], seed=0)
    assert "verify: prefill logits" in ex.proc.stderr
    rep = json.load(open(os.path.join(root, name + ".json")))
    assert rep["verify"]["status"] == "ok", rep["verify"]
    assert rep["verify"]["prefill"]["rel_max_err"] <= 1e-4
    # 64 greedy tokens after each sample prompt (cache of 128).
    assert [g["tokens"] for g in rep["verify"]["greedy"]] == [64] * 2
    assert all(g["status"] in ("identical", "tie") for g in rep["verify"]["greedy"])
    print(name, json.dumps({k: rep[k] for k in ("file_bytes", "timings_s")}))


def test_layer_sharing_program_size(root):
    a = export(root, "125M", build_config("125M"), SMALL_ARGS + ["--report",
               os.path.join(root, "125M.json")], seed=0)
    b = export(root, "LS-125M", build_config("LS-125M"), SMALL_ARGS + ["--report",
               os.path.join(root, "LS-125M.json")], seed=0)
    sa, sb = os.path.getsize(a.out), os.path.getsize(b.out)
    assert abs(sb - sa) <= 0.01 * sa, f"LS-125M program {sb} bytes vs 125M {sa} bytes (> 1%)"


def test_two_methods_share_weights(root):
    a = export(root, "125M", build_config("125M"), SMALL_ARGS + ["--report",
               os.path.join(root, "125M.json")], seed=0)
    b = export(root, "125M-prefill-only", build_config("125M"),
               SMALL_CHUNK + ["--methods", "prefill"], seed=0)
    sa, sb = os.path.getsize(a.out), os.path.getsize(b.out)
    assert abs(sa - sb) <= 0.01 * sb, (f"prefill+decode program {sa} bytes vs prefill-only "
                                       f"{sb} bytes (> 1%)")


def test_metadata_and_tokenizer_asset(tmp_path):
    """docs/llm.md §2: config text, family, S, C, V, BOS/EOS and the tokenizer bytes."""
    d = tiny_config("mobilellm-r1")
    ckpt = tmp_path / "ck"
    write_random_checkpoint(ckpt, d, seed=2)
    tok = {"version": "1.0", "added_tokens": [], "pre_tokenizer": {"type": "ByteLevel"},
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<|begin_of_text|>"}}]},
           "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
    (ckpt / "tokenizer.json").write_text(json.dumps(tok))
    out = tmp_path / "m.kiln"
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", ckpt, "-o", out,
                             "--max-seq-len", "32", "--prefill-chunk", "8"], timeout=300)
    assert proc.returncode == 0, harness.describe(proc)
    info = json.loads(harness.run_tool([harness.binary("kiln"), "inspect", out, "--json"]).stdout)
    meta = info["metadata"]
    assert json.loads(meta["kiln.llm.config"]) == d
    assert meta["kiln.llm.family"] == "mobilellm-r1"
    assert (meta["kiln.llm.max_seq_len"], meta["kiln.llm.prefill_chunk"],
            meta["kiln.llm.vocab_size"]) == ("32", "8", "256")
    assert meta["kiln.llm.bos_token_id"] == "1" and meta["kiln.llm.add_bos"] == "1"
    assert meta["kiln.llm.eos_token_ids"] == "2,3"
    assert meta["kiln.tokenizer.kind"] == "bpe"
    assets = {a["name"]: a for a in info["assets"]}
    assert assets["tokenizer"]["bytes"] == (ckpt / "tokenizer.json").stat().st_size, info["assets"]
    states = {s["name"]: s["shape"] for s in info["states"]}
    assert states == {f"{kv}_cache_{j}": [1, 2, 32, 16] for kv in "kv" for j in range(2)}
