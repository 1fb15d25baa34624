"""kiln.checkpoint: safetensors reader/writer, HF checkpoint directories, MobileLLM shapes."""
import json
import os
import struct
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from kiln.checkpoint import (  # noqa: E402
    CheckpointError,
    check_state_dict,
    expected_mobilellm_shapes,
    load_checkpoint_dir,
    parameter_count,
    read_safetensors,
    write_safetensors,
)


# ---------------------------------------------------------------- safetensors

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_round_trip(tmp_path, dtype):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a": (torch.randn(3, 5, generator=g) * 100).to(dtype),
        "b.weight": torch.randn(7, generator=g).to(dtype),
        "scalar": torch.tensor(1.5).to(dtype),
        "empty": torch.zeros(0, 4, dtype=dtype),
        "special": torch.tensor([float("inf"), -float("inf"), -0.0, 1e-3]).to(dtype),
    }
    p = tmp_path / "x.safetensors"
    write_safetensors(p, tensors, metadata={"format": "pt"})
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    assert json.loads(raw[8:8 + n])["__metadata__"] == {"format": "pt"}
    back = read_safetensors(p)
    assert set(back) == set(tensors)
    for k, t in tensors.items():
        assert back[k].dtype == dtype and back[k].shape == t.shape, k
        assert torch.equal(back[k], t), k


def _assemble(header, data, pad=True):
    hb = json.dumps(header).encode("utf-8")
    if pad:
        hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + data


def _hand_built():
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.25)
    f16 = struct.pack("<3e", 1.0, -0.5, 65504.0)
    # bf16 = upper 16 bits of the float32: 1.0 -> 0x3F80, -2.0 -> 0xC000, 3.0 -> 0x4040
    bf16 = struct.pack("<3H", 0x3F80, 0xC000, 0x4040)
    data = f32 + f16 + bf16
    header = {
        "__metadata__": {"format": "pt"},
        "w32": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "w16": {"dtype": "F16", "shape": [3], "data_offsets": [16, 22]},
        "wbf": {"dtype": "BF16", "shape": [1, 3], "data_offsets": [22, 28]},
    }
    return header, data


def test_hand_built_file(tmp_path):
    header, data = _hand_built()
    p = tmp_path / "h.safetensors"
    p.write_bytes(_assemble(header, data, pad=False))
    t = read_safetensors(p)
    assert t["w32"].dtype == torch.float32
    assert torch.equal(t["w32"], torch.tensor([[1.0, -2.0], [0.5, 3.25]]))
    assert t["w16"].dtype == torch.float16
    assert torch.equal(t["w16"], torch.tensor([1.0, -0.5, 65504.0], dtype=torch.float16))
    assert t["wbf"].dtype == torch.bfloat16
    assert torch.equal(t["wbf"].float(), torch.tensor([[1.0, -2.0, 3.0]]))


def _corrupt(tmp_path, blob):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(blob)
    with pytest.raises(CheckpointError) as e:
        read_safetensors(p)
    msg = str(e.value)
    assert "bad.safetensors" in msg
    return msg


def test_corrupt_truncated_data(tmp_path):
    header, data = _hand_built()
    msg = _corrupt(tmp_path, _assemble(header, data)[:-3])
    assert "truncated" in msg and "'wbf'" in msg


def test_corrupt_header_length_past_eof(tmp_path):
    header, data = _hand_built()
    blob = _assemble(header, data)
    msg = _corrupt(tmp_path, struct.pack("<Q", len(blob) * 4) + blob[8:])
    assert "header length" in msg and "past the end" in msg
    msg = _corrupt(tmp_path, b"\x01\x02")
    assert "truncated" in msg


def test_corrupt_bad_json(tmp_path):
    blob = b"{not json" + b" " * 7
    msg = _corrupt(tmp_path, struct.pack("<Q", len(blob)) + blob)
    assert "JSON" in msg


def test_corrupt_bad_dtype(tmp_path):
    header, data = _hand_built()
    header["w16"]["dtype"] = "I4"
    msg = _corrupt(tmp_path, _assemble(header, data))
    assert "unknown dtype 'I4'" in msg and "'w16'" in msg


def test_corrupt_offsets_mismatch(tmp_path):
    header, data = _hand_built()
    header["w32"]["shape"] = [2, 3]
    msg = _corrupt(tmp_path, _assemble(header, data))
    assert "'w32'" in msg and "mismatch" in msg and "24" in msg


def test_corrupt_offsets_overlap_and_range(tmp_path):
    header, data = _hand_built()
    header["w16"]["data_offsets"] = [12, 18]
    msg = _corrupt(tmp_path, _assemble(header, data))
    assert "overlap" in msg
    header, data = _hand_built()
    header["wbf"]["data_offsets"] = [30, 24]
    msg = _corrupt(tmp_path, _assemble(header, data))
    assert "'wbf'" in msg and "out of range" in msg


# ---------------------------------------------------------------- checkpoint dirs

TINY_CONFIG = {
    "architectures": ["MobileLLMForCausalLM"],
    "model_type": "mobilellm",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 100,
    "max_position_embeddings": 2048,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "share_embedding": True,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float16",
}


def _tiny_state():
    g = torch.Generator().manual_seed(1234)
    shapes = expected_mobilellm_shapes(TINY_CONFIG)
    return {k: torch.randn(s, generator=g).to(torch.float16) for k, s in shapes.items()}


def _write_dir(d, state, kind):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(TINY_CONFIG, f)
    if kind == "safetensors":
        write_safetensors(os.path.join(d, "model.safetensors"), state, {"format": "pt"})
    elif kind == "bin":
        torch.save(state, os.path.join(d, "pytorch_model.bin"))
    elif kind == "sharded":
        names = sorted(state)
        halves = [names[: len(names) // 2], names[len(names) // 2:]]
        wmap = {}
        for i, part in enumerate(halves):
            fn = f"model-{i + 1:05d}-of-00002.safetensors"
            write_safetensors(os.path.join(d, fn), {k: state[k] for k in part})
            wmap.update({k: fn for k in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": wmap}, f)
    return d


def test_tiny_checkpoint_three_layouts(tmp_path):
    state = _tiny_state()
    expected = expected_mobilellm_shapes(TINY_CONFIG)
    assert "lm_head.weight" not in expected
    assert expected["model.layers.1.self_attn.k_proj.weight"] == (32, 64)
    assert expected["model.layers.0.mlp.down_proj.weight"] == (64, 128)
    loaded = []
    for kind in ("safetensors", "bin", "sharded"):
        cfg, st = load_checkpoint_dir(_write_dir(str(tmp_path / kind), state, kind))
        assert cfg == TINY_CONFIG
        check_state_dict(st, expected)
        assert set(st) == set(state)
        for k in state:
            assert st[k].dtype == torch.float16 and torch.equal(st[k], state[k]), (kind, k)
        loaded.append(st)
    for k in state:
        assert torch.equal(loaded[0][k], loaded[1][k]) and torch.equal(loaded[0][k], loaded[2][k])


def test_check_state_dict_reports_everything(tmp_path):
    state = _tiny_state()
    del state["model.layers.1.mlp.up_proj.weight"]
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.zeros(8)
    state["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(64, 32)
    _, st = load_checkpoint_dir(_write_dir(str(tmp_path / "bad"), state, "safetensors"))
    with pytest.raises(CheckpointError) as e:
        check_state_dict(st, expected_mobilellm_shapes(TINY_CONFIG))
    msg = str(e.value)
    assert "missing tensor model.layers.1.mlp.up_proj.weight (expected shape (128, 64))" in msg
    assert "unexpected tensor model.layers.0.self_attn.rotary_emb.inv_freq (shape (8,))" in msg
    assert ("mis-shaped tensor model.layers.0.self_attn.q_proj.weight: "
            "expected shape (64, 64), got (64, 32)") in msg


def test_sharded_torch_bin(tmp_path):
    state = _tiny_state()
    d = tmp_path / "binshards"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(TINY_CONFIG))
    names = sorted(state)
    wmap = {}
    for i, part in enumerate((names[:5], names[5:])):
        fn = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save({k: state[k] for k in part}, str(d / fn))
        wmap.update({k: fn for k in part})
    (d / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": wmap}))
    _, st = load_checkpoint_dir(d)
    check_state_dict(st, expected_mobilellm_shapes(TINY_CONFIG))
    assert all(torch.equal(st[k], state[k]) for k in state)


def test_directory_errors(tmp_path):
    state = _tiny_state()
    d = tmp_path / "noconfig"
    d.mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint_dir(d)
    d = tmp_path / "noweights"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(TINY_CONFIG))
    with pytest.raises(CheckpointError, match="no weights file"):
        load_checkpoint_dir(d)
    d = _write_dir(str(tmp_path / "shardmissing"), state, "sharded")
    os.remove(os.path.join(d, "model-00002-of-00002.safetensors"))
    with pytest.raises(CheckpointError, match="missing shard file.*model-00002-of-00002"):
        load_checkpoint_dir(d)


def test_shard_contents_must_match_index(tmp_path):
    state = _tiny_state()
    d = _write_dir(str(tmp_path / "s"), state, "sharded")
    idx = os.path.join(d, "model.safetensors.index.json")
    with open(idx) as f:
        index = json.load(f)
    shard1 = "model-00001-of-00002.safetensors"
    index["weight_map"]["model.layers.9.mlp.gate_proj.weight"] = shard1
    shard2 = "model-00002-of-00002.safetensors"
    moved = next(k for k, v in index["weight_map"].items() if v == shard2)
    index["weight_map"][moved] = shard1
    with open(idx, "w") as f:
        json.dump(index, f)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint_dir(d)
    msg = str(e.value)
    assert "model.layers.9.mlp.gate_proj.weight" in msg and "not found" in msg
    assert moved in msg and "does not list" in msg


# ---------------------------------------------------------------- parameter counts

def _mobilellm(layers, hidden, inter, heads, kv, model_type="mobilellm", **extra):
    cfg = {
        "architectures": ["MobileLLMForCausalLM"], "model_type": model_type,
        "num_hidden_layers": layers, "hidden_size": hidden, "intermediate_size": inter,
        "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": 32000,
        "max_position_embeddings": 2048, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
        "share_embedding": True, "tie_word_embeddings": False,
    }
    cfg.update(extra)
    return cfg


def _r1(layers, hidden, inter_mlp, heads, kv):
    return {
        "architectures": ["Llama4ForCausalLM"], "model_type": "llama4_text",
        "num_hidden_layers": layers, "hidden_size": hidden,
        "intermediate_size": 8192, "intermediate_size_mlp": inter_mlp,
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": 64,
        "vocab_size": 128256, "tie_word_embeddings": True, "use_qk_norm": True,
        "moe_layers": [], "rope_theta": 8000000.0, "rms_norm_eps": 1e-5,
    }


PUBLISHED = {
    "125M": (_mobilellm(30, 576, 1536, 9, 3), 124_635_456),
    "350M": (_mobilellm(32, 960, 2560, 15, 5), 345_355_200),
    "600M": (_mobilellm(40, 1152, 3072, 18, 6), 603_188_352),
    "1B": (_mobilellm(54, 1280, 3584, 20, 5), 1_005_461_760),
    "1.5B": (_mobilellm(54, 1600, 4352, 25, 5, model_type="llama"), 1_511_188_800),
    "LS-125M": (_mobilellm(30, 576, 1536, 9, 3, layer_sharing=True, use_cache=False),
                124_635_456),
    "LS-350M": (_mobilellm(32, 960, 2560, 15, 5, layer_sharing=True, use_cache=False),
                345_355_200),
    "R1-140M": (_r1(15, 576, 2048, 9, 3), 140_248_512),
    "R1-360M": (_r1(15, 1024, 4096, 16, 4), 359_431_168),
    "R1-950M": (_r1(22, 1536, 6144, 24, 6), 949_685_760),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_parameter_counts(name):
    cfg, count = PUBLISHED[name]
    shapes = expected_mobilellm_shapes(cfg)
    assert "lm_head.weight" not in shapes
    assert parameter_count(shapes) == count


def test_lm_head_and_head_dim_rules():
    untied = _mobilellm(2, 64, 128, 4, 2, model_type="llama", share_embedding=False)
    assert expected_mobilellm_shapes(untied)["lm_head.weight"] == (32000, 64)
    r1 = _r1(1, 64, 128, 4, 2)
    r1["tie_word_embeddings"] = False
    s = expected_mobilellm_shapes(r1)
    assert s["lm_head.weight"] == (128256, 64)
    assert s["model.layers.0.self_attn.q_proj.weight"] == (256, 64)  # explicit head_dim 64
    assert s["model.layers.0.feed_forward.gate_proj.weight"] == (128, 64)
    with pytest.raises(CheckpointError, match="model_type"):
        expected_mobilellm_shapes({"model_type": "gpt2"})
