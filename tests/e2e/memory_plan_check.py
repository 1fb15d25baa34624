"""Static Llama-style decoder IR and an independent checker of kiln-plan-memory.

`llama_decoder_mlir` writes a statically shaped Llama-style decoder (embedding,
RMSNorm, RoPE, grouped-query causal attention, SwiGLU, tied head) directly in the
kiln dialect, the IR the front end produces once input shapes are given.
`check_plan` re-derives lifetimes from `kiln-opt --mlir-print-op-generic` output
and checks the recorded plan without trusting the pass: no two values live at
the same step overlap in the arena (except an allowed in-place overwrite), every
offset is 64-aligned and inside the arena, and it recomputes the lower bound and
the naive total.
"""
import re
from typing import Dict, List, Tuple

import numpy as np

ELEMENT_BYTES = {"f32": 4, "i64": 8, "i32": 4, "f16": 2, "bf16": 2, "i1": 1, "i8": 1, "ui8": 1}
ELEMENTWISE = {"kiln.unary", "kiln.binary", "kiln.compare", "kiln.where", "kiln.cast",
               "kiln.clamp", "kiln.copy"}
VIEWS = {"kiln.reshape", "kiln.unsqueeze", "kiln.squeeze", "kiln.flatten"}


def _hex_blob(values: np.ndarray) -> str:
    # MLIR resource blobs start with a 4-byte alignment word.
    return "0x04000000" + values.astype("<f4").tobytes().hex().upper()


def llama_decoder_mlir(n_layers=8, dim=64, n_heads=4, n_kv_heads=2, hidden=128, vocab=128,
                       seq=16, seed=0, random_weights=True):
    """Returns (MLIR text, weights by name). With random_weights=False every
    weight is a splat (small text, for planning only: nothing to run)."""
    rng = np.random.default_rng(seed)
    arrays: Dict[str, np.ndarray] = {}
    hd = dim // n_heads
    kvd = hd * n_kv_heads
    blobs: Dict[str, str] = {}
    lines: List[str] = []
    counter = [0]

    def t(*dims, ty="f32"):
        return "tensor<" + "".join(f"{d}x" for d in dims) + ty + ">"

    def fresh():
        counter[0] += 1
        return f"%v{counter[0]}"

    def weight(name, *dims, scale=None):
        v = fresh()
        if not random_weights:
            lines.append(f"  {v} = kiln.constant dense<1.000000e-02> : {t(*dims)}")
            return v
        scale = scale if scale is not None else 1.0 / np.sqrt(dims[-1])
        arrays[name] = rng.standard_normal(dims).astype(np.float32) * scale
        blobs[name] = _hex_blob(arrays[name])
        lines.append(f"  {v} = kiln.constant dense_resource<{name}> : {t(*dims)}")
        return v

    def const_i64(values, shape_str):
        v = fresh()
        lines.append(f"  {v} = kiln.constant dense<{values}> : {shape_str}")
        return v

    def op(text):
        v = fresh()
        lines.append(f"  {v} = " + text)
        return v

    ids = "%ids"
    emb = weight("embed", vocab, dim, scale=1.0)
    pos = np.arange(seq)[:, None] / (10000 ** (np.arange(0, hd, 2) / hd))[None, :]
    cos = np.concatenate([np.cos(pos), np.cos(pos)], axis=1).astype(np.float32)
    sin = np.concatenate([np.sin(pos), np.sin(pos)], axis=1).astype(np.float32)
    arrays["rope_cos"], arrays["rope_sin"] = cos, sin
    blobs["rope_cos"] = _hex_blob(cos)
    blobs["rope_sin"] = _hex_blob(sin)
    cos_v = op(f"kiln.constant dense_resource<rope_cos> : {t(seq, hd)}")
    sin_v = op(f"kiln.constant dense_resource<rope_sin> : {t(seq, hd)}")
    mask = ", ".join("[" + ", ".join("true" if j <= i else "false" for j in range(seq)) + "]"
                     for i in range(seq))
    mask_v = op(f"kiln.constant dense<[[{mask}]]> : {t(1, seq, seq, ty='i1')}")
    neg_inf = op(f"kiln.constant dense<-1.0e+30> : tensor<f32>")
    scale_v = op(f"kiln.constant dense<{1.0 / np.sqrt(hd):.8e}> : tensor<f32>")
    zero = const_i64(0, "tensor<i64>")
    half = const_i64(hd // 2, "tensor<i64>")
    end = const_i64(hd, "tensor<i64>")
    shp_q = const_i64(f"[{seq}, {n_heads}, {hd}]", "tensor<3xi64>")
    shp_kv = const_i64(f"[{seq}, {n_kv_heads}, {hd}]", "tensor<3xi64>")
    shp_o = const_i64(f"[{seq}, {dim}]", "tensor<2xi64>")

    x = op(f"kiln.embedding {emb}, {ids} : ({t(vocab, dim)}, {t(seq, ty='i64')}) -> {t(seq, dim)}")

    def rope(v, heads):
        # v: [heads, seq, hd] -> v * cos + rotate_half(v) * sin
        a = op(f"kiln.slice {v}, {zero}, {half} dim -1 step 1 : ({t(heads, seq, hd)}, tensor<i64>, tensor<i64>) -> {t(heads, seq, hd // 2)}")
        b = op(f"kiln.slice {v}, {half}, {end} dim -1 step 1 : ({t(heads, seq, hd)}, tensor<i64>, tensor<i64>) -> {t(heads, seq, hd // 2)}")
        nb = op(f'kiln.unary "neg" {b} : ({t(heads, seq, hd // 2)}) -> {t(heads, seq, hd // 2)}')
        rot = op(f"kiln.concat {nb}, {a} dim -1 : ({t(heads, seq, hd // 2)}, {t(heads, seq, hd // 2)}) -> {t(heads, seq, hd)}")
        vc = op(f'kiln.binary "mul" {v}, {cos_v} : ({t(heads, seq, hd)}, {t(seq, hd)}) -> {t(heads, seq, hd)}')
        rs = op(f'kiln.binary "mul" {rot}, {sin_v} : ({t(heads, seq, hd)}, {t(seq, hd)}) -> {t(heads, seq, hd)}')
        return op(f'kiln.binary "add" {vc}, {rs} : ({t(heads, seq, hd)}, {t(heads, seq, hd)}) -> {t(heads, seq, hd)}')

    for layer in range(n_layers):
        p = f"l{layer}_"
        w_n1 = weight(p + "norm1", dim, scale=1.0)
        wq = weight(p + "wq", dim, dim)
        wk = weight(p + "wk", kvd, dim)
        wv = weight(p + "wv", kvd, dim)
        wo = weight(p + "wo", dim, dim)
        w_n2 = weight(p + "norm2", dim, scale=1.0)
        w1 = weight(p + "w1", hidden, dim)
        w3 = weight(p + "w3", hidden, dim)
        w2 = weight(p + "w2", dim, hidden)
        h = op(f"kiln.rms_norm {x} weight {w_n1} eps 1.000000e-05 : ({t(seq, dim)}, {t(dim)}) -> {t(seq, dim)}")
        q = op(f"kiln.linear {h}, {wq} : ({t(seq, dim)}, {t(dim, dim)}) -> {t(seq, dim)}")
        k = op(f"kiln.linear {h}, {wk} : ({t(seq, dim)}, {t(kvd, dim)}) -> {t(seq, kvd)}")
        v = op(f"kiln.linear {h}, {wv} : ({t(seq, dim)}, {t(kvd, dim)}) -> {t(seq, kvd)}")
        q = op(f"kiln.reshape {q}, {shp_q} : ({t(seq, dim)}, tensor<3xi64>) -> {t(seq, n_heads, hd)}")
        k = op(f"kiln.reshape {k}, {shp_kv} : ({t(seq, kvd)}, tensor<3xi64>) -> {t(seq, n_kv_heads, hd)}")
        v = op(f"kiln.reshape {v}, {shp_kv} : ({t(seq, kvd)}, tensor<3xi64>) -> {t(seq, n_kv_heads, hd)}")
        q = op(f"kiln.transpose {q} dim0 0 dim1 1 : ({t(seq, n_heads, hd)}) -> {t(n_heads, seq, hd)}")
        k = op(f"kiln.transpose {k} dim0 0 dim1 1 : ({t(seq, n_kv_heads, hd)}) -> {t(n_kv_heads, seq, hd)}")
        v = op(f"kiln.transpose {v} dim0 0 dim1 1 : ({t(seq, n_kv_heads, hd)}) -> {t(n_kv_heads, seq, hd)}")
        q = rope(q, n_heads)
        k = rope(k, n_kv_heads)
        rep = n_heads // n_kv_heads
        k = op(f"kiln.repeat_interleave {k} repeats {rep} dim 0 : ({t(n_kv_heads, seq, hd)}) -> {t(n_heads, seq, hd)}")
        v = op(f"kiln.repeat_interleave {v} repeats {rep} dim 0 : ({t(n_kv_heads, seq, hd)}) -> {t(n_heads, seq, hd)}")
        kt = op(f"kiln.transpose {k} dim0 1 dim1 2 : ({t(n_heads, seq, hd)}) -> {t(n_heads, hd, seq)}")
        s = op(f"kiln.matmul {q}, {kt} : ({t(n_heads, seq, hd)}, {t(n_heads, hd, seq)}) -> {t(n_heads, seq, seq)}")
        s = op(f'kiln.binary "mul" {s}, {scale_v} : ({t(n_heads, seq, seq)}, tensor<f32>) -> {t(n_heads, seq, seq)}')
        s = op(f"kiln.where {mask_v}, {s}, {neg_inf} : ({t(1, seq, seq, ty='i1')}, {t(n_heads, seq, seq)}, tensor<f32>) -> {t(n_heads, seq, seq)}")
        s = op(f"kiln.softmax {s} dim -1 log false : ({t(n_heads, seq, seq)}) -> {t(n_heads, seq, seq)}")
        o = op(f"kiln.matmul {s}, {v} : ({t(n_heads, seq, seq)}, {t(n_heads, seq, hd)}) -> {t(n_heads, seq, hd)}")
        o = op(f"kiln.transpose {o} dim0 0 dim1 1 : ({t(n_heads, seq, hd)}) -> {t(seq, n_heads, hd)}")
        o = op(f"kiln.reshape {o}, {shp_o} : ({t(seq, n_heads, hd)}, tensor<2xi64>) -> {t(seq, dim)}")
        o = op(f"kiln.linear {o}, {wo} : ({t(seq, dim)}, {t(dim, dim)}) -> {t(seq, dim)}")
        x = op(f'kiln.binary "add" {x}, {o} : ({t(seq, dim)}, {t(seq, dim)}) -> {t(seq, dim)}')
        h = op(f"kiln.rms_norm {x} weight {w_n2} eps 1.000000e-05 : ({t(seq, dim)}, {t(dim)}) -> {t(seq, dim)}")
        g = op(f"kiln.linear {h}, {w1} : ({t(seq, dim)}, {t(hidden, dim)}) -> {t(seq, hidden)}")
        u = op(f"kiln.linear {h}, {w3} : ({t(seq, dim)}, {t(hidden, dim)}) -> {t(seq, hidden)}")
        g = op(f'kiln.unary "silu" {g} : ({t(seq, hidden)}) -> {t(seq, hidden)}')
        g = op(f'kiln.binary "mul" {g}, {u} : ({t(seq, hidden)}, {t(seq, hidden)}) -> {t(seq, hidden)}')
        d = op(f"kiln.linear {g}, {w2} : ({t(seq, hidden)}, {t(dim, hidden)}) -> {t(seq, dim)}")
        x = op(f'kiln.binary "add" {x}, {d} : ({t(seq, dim)}, {t(seq, dim)}) -> {t(seq, dim)}')
    w_nf = weight("norm_f", dim, scale=1.0)
    x = op(f"kiln.rms_norm {x} weight {w_nf} eps 1.000000e-05 : ({t(seq, dim)}, {t(dim)}) -> {t(seq, dim)}")
    logits = op(f"kiln.linear {x}, {emb} : ({t(seq, dim)}, {t(vocab, dim)}) -> {t(seq, vocab)}")
    body = "\n".join(lines)
    resources = ",\n".join(f"      {k}: \"{v}\"" for k, v in blobs.items())
    text = (f"func.func @forward({ids}: {t(seq, ty='i64')} {{kiln.name = \"ids\"}}) -> {t(seq, vocab)} {{\n"
            f"{body}\n  return {logits} : {t(seq, vocab)}\n}}\n\n"
            f"{{-#\n  dialect_resources: {{\n    builtin: {{\n{resources}\n    }}\n  }}\n#-}}\n")
    return text, arrays


def llama_decoder_reference(arrays: Dict[str, np.ndarray], ids: np.ndarray, n_layers=8,
                            dim=64, n_heads=4, n_kv_heads=2) -> np.ndarray:
    """The decoder of llama_decoder_mlir computed eagerly in float64 numpy."""
    hd = dim // n_heads
    seq = ids.shape[0]
    w = {k: v.astype(np.float64) for k, v in arrays.items()}

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * g

    def rope(v):
        rot = np.concatenate([-v[..., hd // 2:], v[..., :hd // 2]], axis=-1)
        return v * w["rope_cos"] + rot * w["rope_sin"]

    mask = np.tril(np.ones((seq, seq), dtype=bool))
    x = w["embed"][ids]
    for layer in range(n_layers):
        p = f"l{layer}_"
        h = rms(x, w[p + "norm1"])
        q = (h @ w[p + "wq"].T).reshape(seq, n_heads, hd).transpose(1, 0, 2)
        k = (h @ w[p + "wk"].T).reshape(seq, n_kv_heads, hd).transpose(1, 0, 2)
        v = (h @ w[p + "wv"].T).reshape(seq, n_kv_heads, hd).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        k = np.repeat(k, n_heads // n_kv_heads, axis=0)
        v = np.repeat(v, n_heads // n_kv_heads, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.where(mask, s, -1.0e30)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(seq, dim)
        x = x + o @ w[p + "wo"].T
        h = rms(x, w[p + "norm2"])
        g = h @ w[p + "w1"].T
        g = g / (1.0 + np.exp(-g)) * (h @ w[p + "w3"].T)
        x = x + g @ w[p + "w2"].T
    x = rms(x, w["norm_f"])
    return x @ w["embed"].T


# ------------------------------------------------------------------ the checker

_OP_RE = re.compile(r'^\s*(?:(%[\w]+)(?::(\d+))? = )?"([\w.]+)"\((.*?)\)(.*)$')
_TENSOR_RE = re.compile(r"tensor<([^>]*)>")


def _tensor_bytes(type_str: str):
    body = type_str
    parts = body.split("x")
    if body.startswith("*") or "?" in parts[:-1]:
        return None, None
    elem = parts[-1]
    dims = [int(p) for p in parts[:-1]]
    if elem not in ELEMENT_BYTES:
        return None, None
    n = ELEMENT_BYTES[elem]
    for d in dims:
        n *= d
    return n, tuple(dims)


def _align(n: int) -> int:
    return (n + 63) // 64 * 64


def parse_generic(text: str) -> List[dict]:
    """Functions of `kiln-opt --mlir-print-op-generic` output: per function its
    attributes and ops in order (results with type and offset, operands)."""
    funcs = []
    cur = None
    for line in text.splitlines():
        if '"func.func"' in line:
            cur = {"attrs": line, "ops": []}
            funcs.append(cur)
            continue
        if cur is None:
            continue
        if line.lstrip().startswith("})"):
            # The function's closing line carries its discardable attributes.
            cur["attrs"] += line
            cur = None
            continue
        m = _OP_RE.match(line)
        if not m:
            continue
        name, count, opname, operands, rest = m.groups()
        if opname == "func.return":
            cur["ops"].append({"op": opname, "results": [], "operands": re.findall(r"%[\w#]+", operands)})
            continue
        if opname == "func.func":
            continue
        sig = rest.rsplit(" : ", 1)[-1]
        result_part = sig.split("->", 1)[-1]
        types = _TENSOR_RE.findall(result_part)
        off = re.search(r"kiln\.arena_offsets = array<i64(?:: ([-\d, ]+))?>", rest)
        offsets = [int(x) for x in off.group(1).split(",")] if off and off.group(1) else []
        n = int(count) if count else (1 if name else 0)
        results = []
        for i in range(n):
            rname = name if n == 1 else f"{name}#{i}"
            results.append({"name": rname, "type": types[i] if i < len(types) else None,
                            "offset": offsets[i] if i < len(offsets) else None})
        cur["ops"].append({"op": opname, "results": results,
                           "operands": re.findall(r"%[\w#]+", operands)})
    for f in funcs:
        for key in ("arena_bytes", "arena_lower_bound_bytes", "naive_bytes"):
            m = re.search(r"kiln\." + key + r" = (\d+)", f["attrs"])
            f[key] = int(m.group(1)) if m else None
    return funcs


def check_plan(func: dict) -> Tuple[int, int, int]:
    """Asserts the plan of one parsed function is sound; returns (arena, lower
    bound, naive) as recomputed here."""
    ops = func["ops"]
    defs, last, info = {}, {}, {}
    for step, op in enumerate(ops):
        for name in op["operands"]:
            last[name] = step
        for r in op["results"]:
            defs[r["name"]] = step
            last.setdefault(r["name"], step)
    for op in ops:
        if op["op"] == "kiln.constant":
            continue
        for r in op["results"]:
            assert r["offset"] is not None, f"{op['op']} result {r['name']} has no kiln.arena_offsets"
            size, shape = _tensor_bytes(r["type"])
            if r["offset"] >= 0:
                assert size is not None, f"{r['name']} ({r['type']}) planned without a static size"
                info[r["name"]] = (r["offset"], size, shape, op)
    arena = func["arena_bytes"]
    for name, (off, size, _, op) in info.items():
        assert off % 64 == 0, f"{name} ({op['op']}): offset {off} is not 64-aligned"
        assert off + size <= arena, f"{name} ({op['op']}): [{off}, {off + size}) past arena {arena}"

    def in_place_ok(a: str, b: str) -> bool:
        # b overwrites a: a dies at b's op, which may run in place on a.
        oa, sa, sha, _ = info[a]
        ob, sb, shb, op = info[b]
        if oa != ob or sa != sb or last[a] != defs[b] or a not in op["operands"]:
            return False
        if op["op"] in VIEWS:
            return op["operands"][0] == a
        return op["op"] in ELEMENTWISE and sha == shb and len(op["results"]) == 1

    names = sorted(info, key=lambda n: defs[n])
    for i, a in enumerate(names):
        oa, sa = info[a][0], info[a][1]
        for b in names[i + 1:]:
            if defs[b] > last[a]:
                continue  # a is dead before b is defined
            ob, sb = info[b][0], info[b][1]
            if sa == 0 or sb == 0 or oa + sa <= ob or ob + sb <= oa:
                continue
            assert in_place_ok(a, b), (
                f"{a} [{oa}, {oa + sa}) live over steps {defs[a]}..{last[a]} overlaps "
                f"{b} [{ob}, {ob + sb}) defined at step {defs[b]} ({info[b][3]['op']})")

    # Lower bound: live rounded bytes per step; an in-place result and the value
    # it overwrites share their bytes (counted once).
    shared = {b for b in names for a in names if a != b and in_place_ok(a, b)}
    lower = 0
    for step in range(len(ops)):
        live = sum(_align(info[n][1]) for n in names
                   if defs[n] <= step <= last[n] and not (n in shared and defs[n] == step))
        lower = max(lower, live)
    naive = sum(_align(info[n][1]) for n in names)
    return arena, lower, naive
