"""Kiln custom operators for PyTorch (the contract is docs/llm.md §1).

Importing this module registers

    kiln::cached_attention(Tensor q, Tensor k_cache, Tensor v_cache,
                           Tensor start_pos, float scale) -> Tensor

with `torch.library`, with the pure-PyTorch reference implementation
`cached_attention_reference` as its CPU kernel, so a model can call
`torch.ops.kiln.cached_attention(...)` in eager mode and be traced with it. The
Kiln front end registers the same schema in C++ before loading an archive, and
the compiler turns the call into `kiln.cached_attention`.

Registration is idempotent: importing twice, or importing into a process in
which the schema is already defined (e.g. by C++), only adds the CPU kernel if
it is missing.
"""

from __future__ import annotations

import torch

__all__ = ["SCHEMA", "cached_attention", "cached_attention_reference", "register"]

SCHEMA = ("cached_attention(Tensor q, Tensor k_cache, Tensor v_cache, Tensor start_pos, "
          "float scale) -> Tensor")

# Library objects must stay alive for the registrations to stay in effect.
_libraries = []


def cached_attention_reference(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                               start_pos: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of T queries over a KV cache, written for clarity.

    q: [B, Hq, T, D]; k_cache, v_cache: [B, Hkv, S, D] with Hq % Hkv == 0;
    start_pos: int64 [1]. Query i sits at absolute position p = start_pos + i and
    attends to cache positions 0..p only (positions after p are never read).
    Query head h reads kv head h // (Hq // Hkv). Computed in float32; the result
    [B, Hq, T, D] has q's dtype.
    """
    if q.dim() != 4 or k_cache.dim() != 4 or v_cache.dim() != 4:
        raise ValueError(f"cached_attention: q, k_cache, v_cache must be 4-d, got "
                         f"{tuple(q.shape)}, {tuple(k_cache.shape)}, {tuple(v_cache.shape)}")
    b, hq, t, d = q.shape
    bk, hkv, s, dk = k_cache.shape
    if k_cache.shape != v_cache.shape or bk != b or dk != d:
        raise ValueError(f"cached_attention: cache shapes {tuple(k_cache.shape)}, "
                         f"{tuple(v_cache.shape)} do not match q {tuple(q.shape)}")
    if hkv == 0 or hq % hkv != 0:
        raise ValueError(f"cached_attention: {hq} query heads are not a multiple of "
                         f"{hkv} kv heads")
    if start_pos.numel() != 1:
        raise ValueError(f"cached_attention: start_pos must hold one position, got "
                         f"shape {tuple(start_pos.shape)}")
    start = int(start_pos.reshape(-1)[0])
    if start < 0 or start + t > s:
        raise ValueError(f"cached_attention: positions {start}..{start + t - 1} do not fit "
                         f"in the cache of {s} positions")
    group = hq // hkv
    out = torch.empty(b, hq, t, d, dtype=torch.float32)
    for h in range(hq):
        kv = h // group
        for i in range(t):
            p = start + i
            keys = k_cache[:, kv, :p + 1, :].float()          # [B, p+1, D]
            values = v_cache[:, kv, :p + 1, :].float()        # [B, p+1, D]
            query = q[:, h, i, :].float()                     # [B, D]
            scores = torch.einsum("bd,bpd->bp", query, keys) * scale
            weights = torch.softmax(scores, dim=-1)
            out[:, h, i, :] = torch.einsum("bp,bpd->bd", weights, values)
    return out.to(q.dtype)


def _schema_defined() -> bool:
    try:
        torch._C._jit_get_operation("kiln::cached_attention")
        return True
    except RuntimeError:
        return False


def _has_cpu_kernel() -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key("kiln::cached_attention", "CPU")
    except (AttributeError, RuntimeError):
        return False


def register() -> None:
    """Registers the schema (unless defined) and the CPU kernel (unless present)."""
    if not _schema_defined():
        lib = torch.library.Library("kiln", "DEF")
        lib.define(SCHEMA)
        _libraries.append(lib)
    if not _has_cpu_kernel():
        lib = torch.library.Library("kiln", "IMPL")
        lib.impl("cached_attention", cached_attention_reference, "CPU")
        _libraries.append(lib)


def cached_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     start_pos: torch.Tensor, scale: float) -> torch.Tensor:
    """`torch.ops.kiln.cached_attention` (what tracing records)."""
    return torch.ops.kiln.cached_attention(q, k_cache, v_cache, start_pos, scale)


register()
