"""Pure-Python checkpoint reading for Hugging Face style model directories.

- `read_safetensors(path)` / `write_safetensors(path, tensors, metadata=None)`: the
  safetensors format, parsed here (no `safetensors` package): an 8-byte little-endian
  u64 header length N, N bytes of UTF-8 JSON header, then the raw little-endian data
  (tensor `data_offsets` are relative to the end of the header). F32, F16 and BF16.
- `load_checkpoint_dir(path) -> (config, state)`: config.json plus model.safetensors,
  pytorch_model.bin, or a sharded layout with a `*.index.json` weight map.
- `check_state_dict(state, expected)`: one error listing every missing, unexpected
  and mis-shaped tensor.
- `expected_mobilellm_shapes(config)` / `parameter_count(shapes)`: the MobileLLM,
  MobileLLM-LS and MobileLLM-R1 (llama4_text) parameter layouts.

Every problem raises `CheckpointError` (a `ValueError`) naming the file and tensor.
"""
import json
import os
import struct

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "read_safetensors",
    "write_safetensors",
    "load_checkpoint_dir",
    "check_state_dict",
    "expected_mobilellm_shapes",
    "parameter_count",
]


class CheckpointError(ValueError):
    """A checkpoint file or directory is missing, malformed or has the wrong tensors."""


# safetensors dtype name -> (torch dtype, itemsize, numpy dtype used to read the bytes)
_DTYPES = {
    "F32": (torch.float32, 4, np.dtype("<f4")),
    "F16": (torch.float16, 2, np.dtype("<f2")),
    "BF16": (torch.bfloat16, 2, np.dtype("<i2")),  # raw bits, viewed as bfloat16
}
_TORCH_TO_ST = {v[0]: k for k, v in _DTYPES.items()}

# Refuse absurd headers before reading them (the reference reader caps at 100 MB).
_MAX_HEADER = 100 * 1024 * 1024


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _parse_header(path, file_size, raw_len):
    if file_size < 8:
        raise CheckpointError(
            f"{path}: truncated file: {file_size} bytes, too short for the 8-byte header length")
    (n,) = struct.unpack("<Q", raw_len)
    if n > file_size - 8:
        raise CheckpointError(
            f"{path}: header length {n} goes past the end of the file "
            f"({file_size} bytes, at most {file_size - 8} available for the header)")
    if n > _MAX_HEADER:
        raise CheckpointError(f"{path}: header length {n} is too large (limit {_MAX_HEADER})")
    return n


def _validate_entries(path, header, data_size):
    """Check the header entries; return [(name, torch dtype, np dtype, shape, begin, end)]."""
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is not a JSON object")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict)
                                 and all(isinstance(v, str) for v in meta.values())):
        raise CheckpointError(f"{path}: __metadata__ must be an object of strings")
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict):
            raise CheckpointError(f"{where}: header entry is not an object")
        for key in ("dtype", "shape", "data_offsets"):
            if key not in info:
                raise CheckpointError(f"{where}: header entry has no {key!r}")
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise CheckpointError(
                f"{where}: unknown dtype {dtype!r} (supported: {', '.join(_DTYPES)})")
        shape = info["shape"]
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise CheckpointError(f"{where}: bad shape {shape!r} (need a list of ints >= 0)")
        offs = info["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2 or not all(
                isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            raise CheckpointError(f"{where}: bad data_offsets {offs!r} (need [begin, end])")
        begin, end = offs
        if begin < 0 or end < begin:
            raise CheckpointError(
                f"{where}: data_offsets {offs} out of range (begin > end or negative)")
        torch_dtype, itemsize, np_dtype = _DTYPES[dtype]
        want = _prod(shape) * itemsize
        if end - begin != want:
            raise CheckpointError(
                f"{where}: data_offsets {offs} span {end - begin} bytes but shape {shape} "
                f"x {dtype} ({itemsize} bytes) needs {want} bytes (offsets mismatch)")
        if end > data_size:
            raise CheckpointError(
                f"{where}: data_offsets {offs} go past the end of the data: truncated file "
                f"({data_size} data bytes after the header)")
        entries.append((name, torch_dtype, np_dtype, tuple(shape), begin, end))
    ordered = sorted(entries, key=lambda e: (e[4], e[5]))
    for prev, cur in zip(ordered, ordered[1:]):
        if cur[4] < prev[5]:
            raise CheckpointError(
                f"{path}: tensor {cur[0]!r} data_offsets [{cur[4]}, {cur[5]}] overlap tensor "
                f"{prev[0]!r} [{prev[4]}, {prev[5]}]")
    return entries


def read_safetensors(path):
    """Read a .safetensors file into {name: torch.Tensor} with the stored dtypes."""
    path = os.fspath(path)
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw_len = f.read(8)
            n = _parse_header(path, file_size, raw_len)
            raw_header = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read safetensors file: {e}") from e
    if len(raw_header) != n:
        raise CheckpointError(f"{path}: truncated file while reading the {n}-byte header")
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path}: header is not valid UTF-8 JSON: {e}") from e
    data_start = 8 + n
    entries = _validate_entries(path, header, file_size - data_start)
    out = {}
    if not entries:
        return out
    mm = np.memmap(path, dtype=np.uint8, mode="r") if file_size > data_start else None
    try:
        for name, torch_dtype, np_dtype, shape, begin, end in entries:
            if end == begin:
                out[name] = torch.empty(shape, dtype=torch_dtype)
                continue
            arr = np.array(mm[data_start + begin:data_start + end]).view(np_dtype).reshape(shape)
            t = torch.from_numpy(arr)
            if torch_dtype == torch.bfloat16:
                t = t.view(torch.bfloat16)
            out[name] = t
    finally:
        del mm
    return out


def write_safetensors(path, tensors, metadata=None):
    """Write {name: tensor} (f32/f16/bf16) as safetensors; header padded with spaces to 8."""
    path = os.fspath(path)
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{path}: tensor {name!r} is not a torch.Tensor")
        if t.dtype not in _TORCH_TO_ST:
            raise CheckpointError(
                f"{path}: tensor {name!r} has unsupported dtype {t.dtype} (f32/f16/bf16 only)")
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            data = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            data = t.numpy().astype(_DTYPES[_TORCH_TO_ST[t.dtype]][2]).tobytes()
        header[name] = {"dtype": _TORCH_TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-len(hbytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)


def _torch_load(path):
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # pickle/zip errors come in many types
        raise CheckpointError(f"{path}: cannot load torch checkpoint: {e}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return dict(obj)


def _load_weights_file(path):
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return _torch_load(path)


def _load_sharded(dirpath, index_name):
    index_path = os.path.join(dirpath, index_name)
    try:
        with open(index_path, "r", encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{index_path}: cannot read shard index: {e}") from e
    wmap = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
        raise CheckpointError(f"{index_path}: no \"weight_map\" object of name -> shard file")
    shards = {}
    for name, shard in wmap.items():
        shards.setdefault(shard, []).append(name)
    missing_files = [s for s in shards if not os.path.isfile(os.path.join(dirpath, s))]
    if missing_files:
        raise CheckpointError(
            f"{index_path}: missing shard file(s): {', '.join(sorted(missing_files))}")
    state = {}
    problems = []
    for shard in sorted(shards):
        spath = os.path.join(dirpath, shard)
        tensors = _load_weights_file(spath)
        listed = set(shards[shard])
        for name in sorted(listed - tensors.keys()):
            problems.append(f"{name!r} is listed for {shard} but not found in it")
        for name in sorted(tensors.keys() - listed):
            problems.append(f"{shard} holds {name!r}, which the index does not list for it")
        for name in listed & tensors.keys():
            state[name] = tensors[name]
    if problems:
        raise CheckpointError(f"{index_path}: shards do not match the weight map:\n  "
                              + "\n  ".join(problems))
    return state


def load_checkpoint_dir(path):
    """Load a Hugging Face model directory; return (config dict, {name: tensor})."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: not a directory")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        raise CheckpointError(f"{path}: no config.json")
    try:
        with open(cfg_path, "r", encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{cfg_path}: cannot read config: {e}") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfg_path}: config is not a JSON object")
    for single in ("model.safetensors", "pytorch_model.bin"):
        p = os.path.join(path, single)
        if os.path.isfile(p):
            return config, _load_weights_file(p)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if os.path.isfile(os.path.join(path, index)):
            return config, _load_sharded(path, index)
    raise CheckpointError(
        f"{path}: no weights file (looked for model.safetensors, pytorch_model.bin, "
        f"model.safetensors.index.json, pytorch_model.bin.index.json)")


def check_state_dict(state, expected):
    """Raise one CheckpointError listing every missing, unexpected and mis-shaped tensor."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(n for n in set(expected) & set(state)
                       if tuple(state[n].shape) != tuple(expected[n]))
    if not (missing or unexpected or misshaped):
        return
    lines = []
    for n in missing:
        lines.append(f"missing tensor {n} (expected shape {tuple(expected[n])})")
    for n in unexpected:
        lines.append(f"unexpected tensor {n} (shape {tuple(state[n].shape)})")
    for n in misshaped:
        lines.append(f"mis-shaped tensor {n}: expected shape {tuple(expected[n])}, "
                     f"got {tuple(state[n].shape)}")
    raise CheckpointError(
        f"state dict does not match the model ({len(missing)} missing, {len(unexpected)} "
        f"unexpected, {len(misshaped)} mis-shaped):\n  " + "\n  ".join(lines))


def _cfg(config, key):
    if key not in config:
        raise CheckpointError(f"config has no {key!r}")
    return config[key]


def expected_mobilellm_shapes(config):
    """{name: shape} for a MobileLLM / MobileLLM-LS ("mobilellm", "llama") or
    MobileLLM-R1 ("llama4_text") config. Shapes only; nothing is allocated."""
    mt = config.get("model_type")
    if mt in ("mobilellm", "llama"):
        ffn, width = "mlp", _cfg(config, "intermediate_size")
        lm_head = not config.get("share_embedding", False) and not config.get(
            "tie_word_embeddings", False)
    elif mt == "llama4_text":
        ffn, width = "feed_forward", _cfg(config, "intermediate_size_mlp")
        lm_head = not config.get("tie_word_embeddings", False)
    else:
        raise CheckpointError(
            f"unsupported model_type {mt!r} (expected mobilellm, llama or llama4_text)")
    hidden = _cfg(config, "hidden_size")
    heads = _cfg(config, "num_attention_heads")
    kv = config.get("num_key_value_heads", heads)
    vocab = _cfg(config, "vocab_size")
    layers = _cfg(config, "num_hidden_layers")
    head_dim = config.get("head_dim")
    if head_dim is None:
        if hidden % heads:
            raise CheckpointError(
                f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
        head_dim = hidden // heads
    if heads % kv:
        raise CheckpointError(
            f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")
    shapes = {"model.embed_tokens.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (hidden,)
        shapes[p + "self_attn.q_proj.weight"] = (heads * head_dim, hidden)
        shapes[p + "self_attn.k_proj.weight"] = (kv * head_dim, hidden)
        shapes[p + "self_attn.v_proj.weight"] = (kv * head_dim, hidden)
        shapes[p + "self_attn.o_proj.weight"] = (hidden, heads * head_dim)
        shapes[p + "post_attention_layernorm.weight"] = (hidden,)
        shapes[p + f"{ffn}.gate_proj.weight"] = (width, hidden)
        shapes[p + f"{ffn}.up_proj.weight"] = (width, hidden)
        shapes[p + f"{ffn}.down_proj.weight"] = (hidden, width)
    shapes["model.norm.weight"] = (hidden,)
    if lm_head:
        shapes["lm_head.weight"] = (vocab, hidden)
    return shapes


def parameter_count(shapes):
    """Total number of elements over a {name: shape} dict."""
    return sum(_prod(s) for s in shapes.values())
