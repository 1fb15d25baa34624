"""MobileLLM, MobileLLM-LS and MobileLLM-R1 in plain PyTorch, with the published names.

The family is chosen from `config.json` alone (../shared/MOBILELLM.md):

- MobileLLM: `model_type` "mobilellm" (or "llama", the 1.5B config): Llama blocks,
  rotate-half RoPE, SwiGLU `mlp.*`, embeddings shared with the output when
  `share_embedding` / `tie_word_embeddings`.
- MobileLLM-LS: the same plus `"layer_sharing": true`: every stored block runs twice
  in a row (A, A, B, B, ...); each execution is its own attention layer for the cache.
- MobileLLM-R1: `model_type` "llama4_text" (Llama4ForCausalLM, dense): RoPE on
  interleaved pairs, QK-norm (no weight) after RoPE, `feed_forward.*` of width
  `intermediate_size_mlp`.

`MobileLLMForCausalLM.forward(input_ids)` gives float32 logits (trainable);
`forward_cached` / `generate_greedy` are the eager KV-cache reference (the cache is a
list of (k, v) per executed layer, new keys/values concatenated, Hugging Face style).

RoPE for both variants is `x * cos + x[..., perm] * sin_signed` with tables of shape
[S, head_dim] (`rope_tables`): for rotate-half, perm swaps the halves and the sign of
the first half's sin is negative; for interleaved pairs, perm swaps 2i and 2i+1 and
the sign of even lanes is negative. The export module uses the same tables.
"""
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F

__all__ = [
    "ConfigError",
    "MobileLLMConfig",
    "MobileLLMForCausalLM",
    "rope_inv_freq",
    "rope_tables",
    "init_random",
    "load_model",
    "build_config",
    "tiny_config",
    "CONFIG_NAMES",
    "PUBLISHED_PARAMS",
]


class ConfigError(ValueError):
    """config.json describes something this model code does not support."""


FAMILY_MOBILELLM = "mobilellm"
FAMILY_LS = "mobilellm-ls"
FAMILY_R1 = "mobilellm-r1"


def _get(d, key, default=None, required=False):
    if key in d and d[key] is not None:
        return d[key]
    if required:
        raise ConfigError(f"config.json has no {key!r}")
    return default


def _int(d, key, default=None, required=False):
    v = _get(d, key, default, required)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ConfigError(f"config.json {key!r} must be a positive integer, got {v!r}")
    return v


def _ids(v, key):
    if v is None:
        return []
    if isinstance(v, bool):
        raise ConfigError(f"config.json {key!r} must be an integer or a list, got {v!r}")
    if isinstance(v, int):
        return [v]
    if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return list(v)
    raise ConfigError(f"config.json {key!r} must be an integer or a list of integers, got {v!r}")


@dataclass
class MobileLLMConfig:
    family: str
    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int  # stored blocks
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int  # SwiGLU width (R1: intermediate_size_mlp)
    rope_theta: float
    rope_interleaved: bool  # R1: pairs (2i, 2i+1); else rotate-half
    rope_scaling: Optional[Dict[str, Any]]
    use_qk_norm: bool
    rms_norm_eps: float
    tied: bool  # logits = h @ embed_tokens.weight.T; no lm_head.weight
    layer_sharing: bool
    bos_token_id: Optional[int]
    eos_token_ids: List[int]
    max_position_embeddings: int
    # Positions beyond this would need chunked attention (llama4_text without
    # layer_types); None when every layer is full attention.
    attention_chunk_limit: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ffn_name(self) -> str:
        return "feed_forward" if self.family == FAMILY_R1 else "mlp"

    @property
    def num_executed_layers(self) -> int:
        return self.num_hidden_layers * (2 if self.layer_sharing else 1)

    def executed_blocks(self) -> List[int]:
        """Stored block index of each executed attention layer (LS: 0,0,1,1,...)."""
        if self.layer_sharing:
            return [i for i in range(self.num_hidden_layers) for _ in range(2)]
        return list(range(self.num_hidden_layers))

    @classmethod
    def from_json_file(cls, path) -> "MobileLLMConfig":
        path = os.fspath(path)
        try:
            with open(path, "r", encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: cannot read config: {e}") from e
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: config is not a JSON object")
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "MobileLLMConfig":
        if not isinstance(d, dict):
            raise ConfigError("config must be a JSON object")
        mt = d.get("model_type")
        if mt in ("mobilellm", "llama"):
            family = FAMILY_LS if d.get("layer_sharing", False) else FAMILY_MOBILELLM
        elif mt == "llama4_text":
            family = FAMILY_R1
            if d.get("layer_sharing", False):
                raise ConfigError("layer_sharing is not supported with model_type llama4_text")
        else:
            raise ConfigError(
                f"unsupported model_type {mt!r} (supported: 'mobilellm', 'llama' "
                f"(MobileLLM / MobileLLM-LS) and 'llama4_text' (MobileLLM-R1))")
        hidden = _int(d, "hidden_size", required=True)
        heads = _int(d, "num_attention_heads", required=True)
        kv = _int(d, "num_key_value_heads", heads)
        layers = _int(d, "num_hidden_layers", required=True)
        vocab = _int(d, "vocab_size", required=True)
        head_dim = _int(d, "head_dim")
        if head_dim is None:
            if hidden % heads:
                raise ConfigError(
                    f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
            head_dim = hidden // heads
        if head_dim % 2:
            raise ConfigError(f"head_dim {head_dim} must be even for RoPE")
        if heads % kv:
            raise ConfigError(
                f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"unsupported hidden_act {act!r} (only 'silu')")
        for b in ("attention_bias", "mlp_bias"):
            if d.get(b, False):
                raise ConfigError(f"config.json {b!r} is true; biases are not supported")
        chunk_limit = None
        if family == FAMILY_R1:
            width = _int(d, "intermediate_size_mlp", required=True)
            tied = bool(d.get("tie_word_embeddings", True))
            qk = bool(d.get("use_qk_norm", False))
            interleaved = True
            moe = d.get("moe_layers") or []
            if moe:
                raise ConfigError(f"mixture-of-experts layers {moe} are not supported "
                                  f"(MobileLLM-R1 is dense: moe_layers must be empty)")
            if d.get("interleave_moe_layer_step", 0) not in (0, None):
                if d.get("moe_layers") is None:
                    raise ConfigError("interleave_moe_layer_step without moe_layers: "
                                      "mixture-of-experts layers are not supported")
            no_rope = d.get("no_rope_layers")
            if no_rope is not None:
                if not isinstance(no_rope, list) or len(no_rope) != layers:
                    raise ConfigError(f"no_rope_layers must be a list of {layers} entries")
                if any(x != 1 for x in no_rope):
                    raise ConfigError("no_rope_layers has NoPE layers (value 0); only RoPE "
                                      "layers (all 1) are supported")
            lt = d.get("layer_types")
            if lt is None:
                # Hugging Face's llama4_text default: chunked attention on RoPE layers.
                # Identical to full attention for sequences up to attention_chunk_size.
                chunk = d.get("attention_chunk_size")
                if chunk is not None:
                    chunk_limit = int(chunk)
        else:
            width = _int(d, "intermediate_size", required=True)
            tied = bool(d.get("share_embedding", False)) or bool(d.get("tie_word_embeddings", False))
            qk = False
            interleaved = False
            lt = d.get("layer_types")
        if lt is not None:
            if not isinstance(lt, list) or len(lt) != layers:
                raise ConfigError(f"layer_types must be a list of {layers} entries, got {lt!r}")
            bad = sorted({x for x in lt if x != "full_attention"}, key=str)
            if bad:
                raise ConfigError(f"unsupported layer_types {bad} (only 'full_attention')")
        rs = d.get("rope_scaling")
        if rs is not None:
            if not isinstance(rs, dict):
                raise ConfigError(f"rope_scaling must be an object or null, got {rs!r}")
            kind = rs.get("rope_type", rs.get("type"))
            if kind == "default":
                rs = None
            elif kind != "llama3":
                raise ConfigError(f"unsupported rope_scaling type {kind!r} "
                                  f"(supported: 'llama3', 'default' or null)")
            else:
                for k in ("factor", "low_freq_factor", "high_freq_factor",
                          "original_max_position_embeddings"):
                    if k not in rs:
                        raise ConfigError(f"rope_scaling of type llama3 has no {k!r}")
        eps = d.get("rms_norm_eps", 1e-5 if family != FAMILY_R1 else 1e-5)
        bos = d.get("bos_token_id")
        if bos is not None and (isinstance(bos, bool) or not isinstance(bos, int)):
            raise ConfigError(f"bos_token_id must be an integer or null, got {bos!r}")
        return cls(
            family=family, model_type=mt, vocab_size=vocab, hidden_size=hidden,
            num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
            head_dim=head_dim, intermediate_size=width,
            rope_theta=float(d.get("rope_theta", 10000.0)), rope_interleaved=interleaved,
            rope_scaling=rs, use_qk_norm=qk, rms_norm_eps=float(eps), tied=tied,
            layer_sharing=bool(d.get("layer_sharing", False)), bos_token_id=bos,
            eos_token_ids=_ids(d.get("eos_token_id"), "eos_token_id"),
            max_position_embeddings=_int(d, "max_position_embeddings", 2048),
            attention_chunk_limit=chunk_limit, raw=dict(d))


# ----------------------------------------------------------------------- RoPE

def rope_inv_freq(config: MobileLLMConfig) -> torch.Tensor:
    """inv_freq [head_dim/2] float32 (llama3 rope_scaling blend applied when present)."""
    d = config.head_dim
    inv = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    rs = config.rope_scaling
    if rs is None:
        return inv
    factor = float(rs["factor"])
    low = float(rs["low_freq_factor"])
    high = float(rs["high_freq_factor"])
    old = float(rs["original_max_position_embeddings"])
    low_wavelen = old / low
    high_wavelen = old / high
    wavelen = 2 * math.pi / inv
    out = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, out)


def rope_tables(config: MobileLLMConfig, seq_len: int
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cos [S, D], signed sin [S, D], perm [D] int64); rope(x) = x*cos + x[..., perm]*sin."""
    d = config.head_dim
    inv = rope_inv_freq(config)
    pos = torch.arange(seq_len, dtype=torch.int64).float()
    freqs = torch.outer(pos, inv)  # [S, D/2], float32
    half = d // 2
    if config.rope_interleaved:
        ang = freqs.repeat_interleave(2, dim=1)  # lanes 2i, 2i+1 share frequency i
        perm = torch.arange(d).view(half, 2).flip(1).reshape(d)
        sign = torch.tensor([-1.0, 1.0]).repeat(half)
    else:
        ang = torch.cat([freqs, freqs], dim=1)
        perm = torch.cat([torch.arange(half, d), torch.arange(0, half)])
        sign = torch.cat([-torch.ones(half), torch.ones(half)])
    return ang.cos(), ang.sin() * sign, perm


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
               perm: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, D]; cos/sin [T, D] rows for x's positions."""
    return x * cos + x.index_select(-1, perm) * sin


# --------------------------------------------------------------------- blocks

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, device=device))
        self.eps = eps

    def forward(self, x):
        x = x.float()
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def qk_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Llama 4's L2Norm: per head over head_dim, no weight."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class Attention(nn.Module):
    def __init__(self, c: MobileLLMConfig, device=None):
        super().__init__()
        self.c = c
        h, kv, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, h * d, bias=False, device=device)
        self.k_proj = nn.Linear(c.hidden_size, kv * d, bias=False, device=device)
        self.v_proj = nn.Linear(c.hidden_size, kv * d, bias=False, device=device)
        self.o_proj = nn.Linear(h * d, c.hidden_size, bias=False, device=device)

    def qkv(self, x, cos, sin, perm):
        """x [B, T, hidden] -> q [B, H, T, D], k, v [B, KV, T, D] (RoPE + QK-norm done)."""
        c = self.c
        # unflatten/flatten with constant sizes: no shape arithmetic in the traced graph.
        q = self.q_proj(x).unflatten(-1, (c.num_attention_heads, c.head_dim)).transpose(1, 2)
        k = self.k_proj(x).unflatten(-1, (c.num_key_value_heads, c.head_dim)).transpose(1, 2)
        v = self.v_proj(x).unflatten(-1, (c.num_key_value_heads, c.head_dim)).transpose(1, 2)
        q = apply_rope(q, cos, sin, perm)
        k = apply_rope(k, cos, sin, perm)
        if c.use_qk_norm:
            q = qk_norm(q, c.rms_norm_eps)
            k = qk_norm(k, c.rms_norm_eps)
        return q, k, v

    def out(self, o):
        """o [B, H, T, D] -> [B, T, hidden]."""
        return self.o_proj(o.transpose(1, 2).flatten(2))


def eager_attention(q, k, v, past_len: int, scale: float):
    """q [B, H, T, D], k/v [B, KV, L, D] (L = past_len + T); causal, grouped-query."""
    rep = q.shape[1] // k.shape[1]
    if rep > 1:
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    t, total = q.shape[2], k.shape[2]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    qpos = torch.arange(t).view(t, 1) + past_len
    kpos = torch.arange(total).view(1, total)
    scores = scores.masked_fill(kpos > qpos, float("-inf"))
    return torch.matmul(torch.softmax(scores.float(), dim=-1), v)


class MLP(nn.Module):
    def __init__(self, c: MobileLLMConfig, device=None):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False, device=device)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False, device=device)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False, device=device)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: MobileLLMConfig, device=None):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps, device)
        self.self_attn = Attention(c, device)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps, device)
        setattr(self, c.ffn_name, MLP(c, device))
        self.ffn_name = c.ffn_name

    def ffn(self, x):
        return getattr(self, self.ffn_name)(x)

    def run(self, x, cos, sin, perm, attend):
        """attend(q, k, v) -> o [B, H, T, D] holds the cache policy (eager or export)."""
        q, k, v = self.self_attn.qkv(self.input_layernorm(x), cos, sin, perm)
        h = x + self.self_attn.out(attend(q, k, v))
        return h + self.ffn(self.post_attention_layernorm(h))


class MobileLLMModel(nn.Module):
    def __init__(self, c: MobileLLMConfig, device=None):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size, device=device)
        self.layers = nn.ModuleList([DecoderLayer(c, device)
                                     for _ in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, device)


class MobileLLMForCausalLM(nn.Module):
    def __init__(self, config: MobileLLMConfig, uninitialized: bool = False):
        """uninitialized=True skips PyTorch's default init (weights are garbage until
        loaded): much faster for large models whose weights are overwritten anyway."""
        super().__init__()
        if isinstance(config, dict):
            config = MobileLLMConfig.from_dict(config)
        self.config = config
        dev = "meta" if uninitialized else None
        self.model = MobileLLMModel(config, dev)
        if not config.tied:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False,
                                     device=dev)
        if uninitialized:
            self.to_empty(device="cpu")
        self._rope_len = 0
        self._rope = None

    # -- shared pieces (also used by the export module)
    def logits(self, h):
        h = self.model.norm(h)
        if self.config.tied:
            # linear(h, W) = h @ W.T with W the embedding itself: one constant, stored once.
            return F.linear(h, self.model.embed_tokens.weight)
        return self.lm_head(h)

    def rope(self, seq_len: int):
        if self._rope is None or self._rope_len < seq_len:
            n = max(seq_len, min(self.config.max_position_embeddings, 4096))
            self._rope = rope_tables(self.config, n)
            self._rope_len = n
        return self._rope

    def run_layers(self, x, cos, sin, perm, attend_for_layer):
        """attend_for_layer(j) -> attend fn for executed layer j."""
        for j, i in enumerate(self.config.executed_blocks()):
            x = self.model.layers[i].run(x, cos, sin, perm, attend_for_layer(j))
        return x

    # -- eager paths
    def forward_cached(self, input_ids: torch.Tensor, past=None, last_only: bool = False):
        """input_ids [B, T]; past: list of (k, v) per executed layer or None.
        Returns (logits [B, T, V] float32, new past); last_only: logits [B, 1, V] of the
        last position only (the final norm and lm_head skip the other rows)."""
        c = self.config
        past_len = 0 if past is None else past[0][0].shape[2]
        t = input_ids.shape[1]
        if c.attention_chunk_limit is not None and past_len + t > c.attention_chunk_limit:
            raise ConfigError(f"positions beyond attention_chunk_size {c.attention_chunk_limit} "
                              f"need chunked attention, which is not supported")
        cos_t, sin_t, perm = self.rope(past_len + t)
        cos = cos_t[past_len:past_len + t]
        sin = sin_t[past_len:past_len + t]
        new_past: List[Tuple[torch.Tensor, torch.Tensor]] = []
        scale = c.head_dim ** -0.5

        def attend_for_layer(j):
            def attend(q, k, v):
                if past is not None:
                    k = torch.cat([past[j][0], k], dim=2)
                    v = torch.cat([past[j][1], v], dim=2)
                new_past.append((k, v))
                return eager_attention(q, k, v, past_len, scale)
            return attend

        x = self.model.embed_tokens(input_ids).float()
        x = self.run_layers(x, cos, sin, perm, attend_for_layer)
        if last_only:
            x = x[:, -1:]
        return self.logits(x).float(), new_past

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.forward_cached(input_ids)[0]

    @torch.no_grad()
    def generate_greedy(self, prompt_ids: Sequence[int], n: int):
        """Greedy decoding of n tokens with the KV cache.
        Returns (tokens [n], margins [n] top1-top2 logit per step, prefill logits [T, V])."""
        ids = torch.as_tensor(list(prompt_ids), dtype=torch.int64).view(1, -1)
        if ids.shape[1] < 1:
            raise ValueError("empty prompt")
        logits, past = self.forward_cached(ids)
        prefill = logits[0].clone()
        last = logits[0, -1]
        tokens, margins = [], []
        for step in range(n):
            top = torch.topk(last, 2)
            tok = int(torch.argmax(last))
            tokens.append(tok)
            margins.append(float(top.values[0] - top.values[1]))
            if step + 1 == n:
                break
            logits, past = self.forward_cached(torch.tensor([[tok]]), past)
            last = logits[0, -1]
        return tokens, margins, prefill


# ------------------------------------------------------------- init / configs

@torch.no_grad()
def init_random(config, seed: int = 0, std: float = 0.02, norm_std: float = 0.1
                ) -> MobileLLMForCausalLM:
    """A model with seeded weights: N(0, std) matrices, norm weights 1 + N(0, norm_std)."""
    if isinstance(config, dict):
        config = MobileLLMConfig.from_dict(config)
    model = MobileLLMForCausalLM(config, uninitialized=True)
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        if p.dim() == 1:
            p.copy_(1.0 + norm_std * torch.randn(p.shape, generator=g))
        else:
            p.normal_(0.0, std, generator=g)
    return model


def mobilellm_config(layers, hidden, inter, heads, kv, dtype, ls=False, llama=False):
    """A MobileLLM config.json dict in the published style (head dim 64, vocab 32000,
    context 2048, bos 1 / eos 2, shared embedding); `ls`: MobileLLM-LS layer sharing;
    `llama`: the plain Llama config of the 1.5B. Callers override fields as needed."""
    d = {
        "architectures": ["LlamaForCausalLM" if llama else "MobileLLMForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "layer_sharing": ls,
        "max_position_embeddings": 2048,
        "mlp_bias": False,
        "model_type": "llama" if llama else "mobilellm",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "share_embedding": True,
        "tie_word_embeddings": False,
        "torch_dtype": dtype,
        "use_cache": not ls,
        "vocab_size": 32000,
    }
    if llama:
        del d["layer_sharing"]
    return d


def _r1(layers, hidden, inter_mlp, heads, kv):
    return {
        "architectures": ["Llama4ForCausalLM"],
        "attention_bias": False,
        "attention_chunk_size": 32768,
        "attention_dropout": 0.0,
        "attn_scale": 0.1,
        "attn_temperature_tuning": False,
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
        "floor_scale": 8192,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "interleave_moe_layer_step": 0,
        "intermediate_size": inter_mlp * 4,
        "intermediate_size_mlp": inter_mlp,
        "layer_types": ["full_attention"] * layers,
        "max_position_embeddings": 32768,
        "model_type": "llama4_text",
        "moe_layers": [],
        "no_rope_layers": [1] * layers,
        "num_attention_heads": heads,
        "num_experts_per_tok": 0,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "num_local_experts": 0,
        "pad_token_id": 128004,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 8000000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_qk_norm": True,
        "vocab_size": 128256,
    }


_BUILDERS = {
    "125M": lambda: mobilellm_config(30, 576, 1536, 9, 3, "float16"),
    "350M": lambda: mobilellm_config(32, 960, 2560, 15, 5, "float16"),
    "600M": lambda: mobilellm_config(40, 1152, 3072, 18, 6, "bfloat16"),
    "1B": lambda: mobilellm_config(54, 1280, 3584, 20, 5, "bfloat16"),
    "1.5B": lambda: mobilellm_config(54, 1600, 4352, 25, 5, "bfloat16", llama=True),
    "LS-125M": lambda: mobilellm_config(30, 576, 1536, 9, 3, "float16", ls=True),
    "LS-350M": lambda: mobilellm_config(32, 960, 2560, 15, 5, "float16", ls=True),
    "R1-140M": lambda: _r1(15, 576, 2048, 9, 3),
    "R1-360M": lambda: _r1(15, 1024, 4096, 16, 4),
    "R1-950M": lambda: _r1(22, 1536, 6144, 24, 6),
}
CONFIG_NAMES = list(_BUILDERS)

# Published parameter counts (tied), ../shared/MOBILELLM.md.
PUBLISHED_PARAMS = {
    "125M": 124_635_456, "350M": 345_355_200, "600M": 603_188_352,
    "1B": 1_005_461_760, "1.5B": 1_511_188_800,
    "LS-125M": 124_635_456, "LS-350M": 345_355_200,
    "R1-140M": 140_248_512, "R1-360M": 359_431_168, "R1-950M": 949_685_760,
}


def build_config(name: str) -> Dict[str, Any]:
    """The config.json dict of a published configuration (names: CONFIG_NAMES)."""
    key = name.replace("MobileLLM-", "")
    if key not in _BUILDERS:
        raise ConfigError(f"unknown configuration {name!r} (known: {', '.join(CONFIG_NAMES)})")
    return _BUILDERS[key]()


def tiny_config(family: str = "mobilellm", **overrides) -> Dict[str, Any]:
    """A small config.json dict for tests: family mobilellm, mobilellm-ls or mobilellm-r1."""
    if family in ("mobilellm", "mobilellm-ls"):
        d = mobilellm_config(2, 64, 128, 4, 2, "float32", ls=(family == "mobilellm-ls"))
        d["vocab_size"] = 256
    elif family == "mobilellm-r1":
        d = _r1(2, 64, 128, 4, 2)
        d.update(vocab_size=256, bos_token_id=1, eos_token_id=[2, 3], pad_token_id=0,
                 torch_dtype="float32", rope_theta=10000.0)
    else:
        raise ConfigError(f"unknown family {family!r}")
    d["head_dim"] = 16
    d["max_position_embeddings"] = 256
    d.update(overrides)
    if family == "mobilellm-r1" and "num_hidden_layers" in overrides:
        n = overrides["num_hidden_layers"]  # keep the per-layer lists the right length
        for key, value in (("layer_types", "full_attention"), ("no_rope_layers", 1)):
            if key not in overrides:
                d[key] = [value] * n
    return d


# ------------------------------------------------------------------- loading

def load_model(checkpoint_dir, dtype: torch.dtype = torch.float32) -> MobileLLMForCausalLM:
    """Build the model from a Hugging Face directory (config.json + weights, single or
    sharded, .safetensors or .bin). 16-bit checkpoints are converted to `dtype`
    (float32 by default, so the model computes in float32). Missing, unexpected and
    mis-shaped tensors are all named in one CheckpointError."""
    from kiln.checkpoint import check_state_dict, expected_mobilellm_shapes, load_checkpoint_dir
    raw, state = load_checkpoint_dir(checkpoint_dir)
    config = MobileLLMConfig.from_dict(raw)
    check_state_dict(state, expected_mobilellm_shapes(raw))
    model = MobileLLMForCausalLM(config, uninitialized=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(state[name].to(torch.float32))
    if dtype != torch.float32:
        model = model.to(dtype)
    return model.eval()
