"""kiln.models.mobilellm: configs, parameter names/counts, checkpoint loading, and the
eager model against an independent reference written here from the published formulas
(../shared/MOBILELLM.md; Hugging Face Llama / Llama 4 text). No compiler involved."""
import json
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from kiln.checkpoint import (CheckpointError, expected_mobilellm_shapes,  # noqa: E402
                             parameter_count)
from kiln.models import (CONFIG_NAMES, PUBLISHED_PARAMS, ConfigError,  # noqa: E402
                         MobileLLMConfig, MobileLLMForCausalLM, build_config, init_random,
                         load_model, tiny_config)
from kiln.models.mobilellm import rope_inv_freq  # noqa: E402
from kiln.models.testing import write_checkpoint, write_random_checkpoint  # noqa: E402
from kiln.export_hf import LLMExportModule, prefill_chunks, run_export_module  # noqa: E402

FAMILIES = ["mobilellm", "mobilellm-ls", "mobilellm-r1"]


# ------------------------------------------------------------------ configs

@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_published_config(name):
    d = build_config(name)
    c = MobileLLMConfig.from_dict(json.loads(json.dumps(d)))  # as read from config.json
    want_family = ("mobilellm-r1" if name.startswith("R1") else
                   "mobilellm-ls" if name.startswith("LS") else "mobilellm")
    assert c.family == want_family
    assert c.tied and c.head_dim == 64
    assert c.rope_interleaved == (want_family == "mobilellm-r1")
    assert c.use_qk_norm == (want_family == "mobilellm-r1")
    assert c.num_executed_layers == c.num_hidden_layers * (2 if want_family == "mobilellm-ls" else 1)
    shapes = expected_mobilellm_shapes(d)
    assert "lm_head.weight" not in shapes
    assert parameter_count(shapes) == PUBLISHED_PARAMS[name], name


def test_1_5b_is_plain_llama():
    d = build_config("1.5B")
    assert d["model_type"] == "llama"
    assert MobileLLMConfig.from_dict(d).family == "mobilellm"


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_names_are_published_ones(family):
    d = tiny_config(family)
    m = MobileLLMForCausalLM(MobileLLMConfig.from_dict(d))
    got = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert got == {n: tuple(s) for n, s in expected_mobilellm_shapes(d).items()}
    ffn = "feed_forward" if family == "mobilellm-r1" else "mlp"
    assert f"model.layers.1.{ffn}.down_proj.weight" in got
    assert not [n for n in m.state_dict() if n not in got], "buffers leak into state_dict"


def test_untied_has_lm_head():
    d = tiny_config("mobilellm", share_embedding=False)
    m = init_random(d, 0)
    assert "lm_head.weight" in dict(m.named_parameters())
    d = tiny_config("mobilellm-r1", tie_word_embeddings=False)
    assert "lm_head.weight" in dict(init_random(d, 0).named_parameters())


@pytest.mark.parametrize("change,message", [
    ({"model_type": "gpt2"}, "unsupported model_type 'gpt2'"),
    ({"layer_types": ["full_attention", "sliding_attention"]}, "sliding_attention"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "unsupported rope_scaling type 'yarn'"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"num_key_value_heads": 3}, "not a multiple of num_key_value_heads 3"),
])
def test_config_errors(change, message):
    d = tiny_config("mobilellm")
    d.update(change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        MobileLLMConfig.from_dict(d)


def test_r1_config_errors():
    with pytest.raises(ConfigError, match="mixture-of-experts"):
        MobileLLMConfig.from_dict(tiny_config("mobilellm-r1", moe_layers=[1]))
    with pytest.raises(ConfigError, match="NoPE"):
        MobileLLMConfig.from_dict(tiny_config("mobilellm-r1", no_rope_layers=[1, 0]))
    with pytest.raises(ConfigError, match="chunked_attention"):
        MobileLLMConfig.from_dict(
            tiny_config("mobilellm-r1", layer_types=["full_attention", "chunked_attention"]))
    # No layer_types: Hugging Face's default is chunked attention, equal to full attention
    # up to attention_chunk_size; beyond it the model refuses.
    d = tiny_config("mobilellm-r1", attention_chunk_size=8)
    del d["layer_types"]
    m = init_random(d, 0)
    m(torch.zeros(1, 8, dtype=torch.int64))
    with pytest.raises(ConfigError, match="attention_chunk_size 8"):
        m(torch.zeros(1, 9, dtype=torch.int64))


# ------------------------------------------------- independent reference

def ref_rope_rotate_half(x, pos, theta):
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2).float() / d))
    f = pos.float()[:, None] * inv[None]
    emb = torch.cat([f, f], -1)
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()


def ref_rope_complex(x, pos, inv):
    """Llama 4: view (x[2i], x[2i+1]) as a complex number, multiply by e^{i p f_i}."""
    f = pos.float()[:, None] * inv[None]
    cis = torch.polar(torch.ones_like(f), f)
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * cis).flatten(-2)


def reference_logits(m, ids):
    """A straight re-implementation from the formulas, using the model's weights."""
    c = m.config
    sd = {k: v.double() for k, v in m.state_dict().items()}
    T = ids.shape[1]
    pos = torch.arange(T)

    def rms(x, w=None):
        y = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + c.rms_norm_eps)
        return y if w is None else y * w

    x = sd["model.embed_tokens.weight"][ids[0]]
    blocks = [i for i in range(c.num_hidden_layers)
              for _ in range(2 if c.layer_sharing else 1)]
    for i in blocks:
        p = f"model.layers.{i}."
        h = rms(x, sd[p + "input_layernorm.weight"])
        q = (h @ sd[p + "self_attn.q_proj.weight"].T).view(T, -1, c.head_dim).transpose(0, 1)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T).view(T, -1, c.head_dim).transpose(0, 1)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T).view(T, -1, c.head_dim).transpose(0, 1)
        if c.rope_interleaved:
            inv = rope_inv_freq(c)
            q, k = ref_rope_complex(q, pos, inv).double(), ref_rope_complex(k, pos, inv).double()
        else:
            q, k = ref_rope_rotate_half(q, pos, c.rope_theta), ref_rope_rotate_half(k, pos, c.rope_theta)
        if c.use_qk_norm:
            q, k = rms(q), rms(k)
        outs = []
        g = c.num_attention_heads // c.num_key_value_heads
        for hh in range(c.num_attention_heads):
            s = q[hh] @ k[hh // g].T / math.sqrt(c.head_dim)
            s = s + torch.triu(torch.full((T, T), float("-inf"), dtype=s.dtype), 1)
            outs.append(torch.softmax(s, -1) @ v[hh // g])
        o = torch.cat(outs, -1)
        x = x + o @ sd[p + "self_attn.o_proj.weight"].T
        h = rms(x, sd[p + "post_attention_layernorm.weight"])
        ffn = "feed_forward" if c.family == "mobilellm-r1" else "mlp"
        a = h @ sd[p + f"{ffn}.gate_proj.weight"].T
        b = h @ sd[p + f"{ffn}.up_proj.weight"].T
        x = x + (a * torch.sigmoid(a) * b) @ sd[p + f"{ffn}.down_proj.weight"].T
    x = rms(x, sd["model.norm.weight"])
    w = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])
    return (x @ w.T)[None]


@pytest.mark.parametrize("family", FAMILIES)
def test_eager_matches_reference(family):
    m = init_random(tiny_config(family), seed=5).eval()
    ids = torch.randint(0, 256, (1, 19), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = m(ids).double()
    want = reference_logits(m, ids)
    err = ((got - want).abs().max() / want.abs().max()).item()
    assert err < 1e-5, f"{family}: eager vs reference relative max error {err:.3g} > 1e-5"


def test_layer_sharing_runs_each_block_twice():
    d = tiny_config("mobilellm-ls")
    ls = init_random(d, 3).eval()
    d2 = dict(d, layer_sharing=False, num_hidden_layers=4)
    plain = MobileLLMForCausalLM(MobileLLMConfig.from_dict(d2)).eval()
    sd = ls.state_dict()
    mapped = {}
    for k, v in sd.items():
        if k.startswith("model.layers."):
            i = int(k.split(".")[2])
            rest = k.split(".", 3)[3]
            mapped[f"model.layers.{2 * i}.{rest}"] = v
            mapped[f"model.layers.{2 * i + 1}.{rest}"] = v
        else:
            mapped[k] = v
    plain.load_state_dict(mapped)
    ids = torch.arange(1, 12).view(1, -1)
    with torch.no_grad():
        assert torch.allclose(ls(ids), plain(ids), atol=1e-6, rtol=0)


def test_llama3_rope_scaling():
    rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    base = MobileLLMConfig.from_dict(tiny_config("mobilellm-r1"))
    scaled = MobileLLMConfig.from_dict(tiny_config("mobilellm-r1", rope_scaling=rs))
    b, s = rope_inv_freq(base), rope_inv_freq(scaled)
    wavelen = 2 * math.pi / b
    hi = wavelen < 64 / 4.0   # high frequencies: unchanged
    lo = wavelen > 64 / 1.0   # low frequencies: divided by factor
    assert hi.any() and lo.any() and (~hi & ~lo).any()
    assert torch.equal(s[hi], b[hi])
    assert torch.allclose(s[lo], b[lo] / 8.0)
    mid = ~hi & ~lo
    assert ((s[mid] < b[mid]) & (s[mid] > b[mid] / 8.0)).all()  # blended in between
    m = init_random(tiny_config("mobilellm-r1", rope_scaling=rs), 2).eval()
    ids = torch.arange(1, 30).view(1, -1)
    with torch.no_grad():
        err = (m(ids).double() - reference_logits(m, ids)).abs().max().item()
    assert err < 1e-4


# ------------------------------------------------------- KV cache paths

@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cache_matches_full_forward(family):
    m = init_random(tiny_config(family), 1).eval()
    ids = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = m(ids)
        a, past = m.forward_cached(ids[:, :10])
        b, past = m.forward_cached(ids[:, 10:11], past)
        cc, past = m.forward_cached(ids[:, 11:], past)
    assert len(past) == m.config.num_executed_layers
    err = (torch.cat([a, b, cc], 1) - full).abs().max().item()
    assert err < 1e-5, f"{family}: cached vs full forward max error {err:.3g}"
    with torch.no_grad():
        last, _ = m.forward_cached(ids, last_only=True)
    assert last.shape == (1, 1, full.shape[2])
    err = (last[0, 0] - full[0, -1]).abs().max().item()
    assert err < 1e-5, f"{family}: forward_cached(last_only=True) vs last row, error {err:.3g}"


@pytest.mark.parametrize("family", FAMILIES)
def test_export_module_prefill_last_is_a_row_of_prefill(family):
    m = init_random(tiny_config(family), 1).eval()
    mod = LLMExportModule(m, 48).eval()
    ids = torch.randint(1, 256, (1, 16), generator=torch.Generator().manual_seed(3))
    start = torch.tensor([8])
    with torch.no_grad():
        mod.reset_cache()
        full = mod.prefill(ids, start)
        for last in (0, 9, 15):
            mod.reset_cache()
            got = mod.prefill_last(ids, start, torch.tensor([last]))
            err = (got[0, 0] - full[0, last]).abs().max().item()
            assert got.shape == (1, 1, full.shape[2]) and err < 1e-5, \
                f"{family}: prefill_last row {last} vs prefill, error {err:.3g}"


def test_prefill_chunk_schedule():
    assert prefill_chunks(3, 8) == [0]
    assert prefill_chunks(8, 8) == [0]
    assert prefill_chunks(16, 8) == [0, 8]
    assert prefill_chunks(13, 8) == [0, 5]
    assert prefill_chunks(20, 8) == [0, 8, 12]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("plen", [3, 16, 27])
def test_export_module_eager_matches_kv_cache_model(family, plen):
    """The export module (buffers + index_copy_ + kiln.cached_attention + RoPE tables),
    run eagerly on the runner's schedule, against the eager KV-cache model."""
    m = init_random(tiny_config(family), 1).eval()
    mod = LLMExportModule(m, 48).eval()
    prompt = torch.randint(1, 256, (plen,), generator=torch.Generator().manual_seed(plen)).tolist()
    toks, steps = run_export_module(mod, prompt, 10, 16)
    want, margins, _ = m.generate_greedy(prompt, 10)
    with torch.no_grad():
        ref = m(torch.tensor([prompt + want[:-1]]))[0, plen - 1:]
    err = (steps - ref).abs().max().item()
    assert err <= 1e-5, f"{family}, prompt {plen}: step logits max error {err:.3g} > 1e-5"
    assert toks == want


# ------------------------------------------------------------ checkpoints

@pytest.mark.parametrize("fmt,shards", [("safetensors", 1), ("bin", 1), ("safetensors", 3),
                                        ("bin", 2)])
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_checkpoint_round_trip(tmp_path, family, fmt, shards):
    d = tiny_config(family)
    m = write_random_checkpoint(tmp_path, d, seed=4, fmt=fmt, shards=shards)
    if shards > 1:
        stem = "model.safetensors" if fmt == "safetensors" else "pytorch_model.bin"
        index = json.loads((tmp_path / f"{stem}.index.json").read_text())
        assert len(set(index["weight_map"].values())) == shards
    loaded = load_model(tmp_path)
    ids = torch.arange(1, 9).view(1, -1)
    with torch.no_grad():
        assert torch.equal(loaded(ids), m(ids))


def test_16bit_checkpoint_computes_in_float32(tmp_path):
    d = tiny_config("mobilellm", torch_dtype="bfloat16")
    m = write_random_checkpoint(tmp_path, d, seed=4)
    loaded = load_model(tmp_path)
    for n, p in loaded.named_parameters():
        assert p.dtype == torch.float32
        assert torch.equal(p, dict(m.named_parameters())[n].to(torch.bfloat16).float()), n


def test_bad_checkpoint_names_every_tensor(tmp_path):
    d = tiny_config("mobilellm")
    sd = init_random(d, 0).state_dict()
    del sd["model.layers.1.mlp.up_proj.weight"]
    sd["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(64)
    sd["model.norm.weight"] = torch.ones(65)
    write_checkpoint(tmp_path, d, sd)
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path)
    msg = str(e.value)
    assert "missing tensor model.layers.1.mlp.up_proj.weight" in msg
    assert "unexpected tensor model.layers.0.self_attn.q_proj.bias" in msg
    assert "mis-shaped tensor model.norm.weight: expected shape (64,), got (65,)" in msg


@pytest.mark.parametrize("name,fmt,shards", [
    ("125M", "safetensors", 1), ("125M", "bin", 1), ("LS-125M", "bin", 1),
    ("R1-140M", "safetensors", 2)])
def test_small_published_checkpoints_load(tmp_path, name, fmt, shards):
    d = build_config(name)
    m = write_random_checkpoint(tmp_path, d, seed=7, fmt=fmt, shards=shards)
    loaded = load_model(tmp_path)
    assert sum(p.numel() for p in loaded.parameters()) == PUBLISHED_PARAMS[name]
    dt = {"float16": torch.float16, "bfloat16": torch.bfloat16}[d["torch_dtype"]]
    want = dict(m.named_parameters())
    for n, p in loaded.named_parameters():
        assert torch.equal(p, want[n].to(dt).float()), n
