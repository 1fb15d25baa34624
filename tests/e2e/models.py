"""PyTorch models for the end-to-end tests: three small decoders/MLPs and one tiny
model per op of docs/dialect.md. Everything is seeded and small, so tracing,
compiling and running one case takes well under a second of model work.

The Llama-style decoder is the one in examples/tiny_llama/model.py (one definition
for the example and the tests).
"""
import importlib.util
import math
import os
import zlib
from dataclasses import dataclass, field
from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_DIR = os.environ.get("KILN_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_tiny_llama_module():
    path = os.path.join(REPO_DIR, "examples", "tiny_llama", "model.py")
    spec = importlib.util.spec_from_file_location("kiln_example_tiny_llama", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny_llama = _load_tiny_llama_module()
LlamaConfig = tiny_llama.LlamaConfig


# --------------------------------------------------------------------------- decoders

def make_llama(seed: int = 0) -> nn.Module:
    """Llama-style: RMSNorm, RoPE, GQA (4 query heads, 2 kv heads), SwiGLU, tied."""
    return tiny_llama.build_llama(LlamaConfig(), seed=seed)


def llama_tokens(seq_len: int, batch: int = 1, seed: int = 1) -> np.ndarray:
    return tiny_llama.example_tokens(LlamaConfig(), seq_len, batch, seed).numpy()


# A wider, deeper Llama where the linear/embedding weights dominate the program
# (as in a real model): for the quantization tests (test_quantize.py).
QUANT_LLAMA_CONFIG = LlamaConfig(vocab_size=1024, dim=256, n_layers=8, n_heads=4,
                                 n_kv_heads=2, hidden_dim=512)


def make_quant_llama(seed: int = 0) -> nn.Module:
    return tiny_llama.build_llama(QUANT_LLAMA_CONFIG, seed=seed)


def quant_llama_tokens(seq_len: int, batch: int = 1, seed: int = 1) -> np.ndarray:
    return tiny_llama.example_tokens(QUANT_LLAMA_CONFIG, seq_len, batch, seed).numpy()


@dataclass
class GPT2Config:
    vocab_size: int = 64
    block_size: int = 16
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 32
    lm_head_bias: bool = False


class GPT2Attention(nn.Module):
    def __init__(self, cfg: GPT2Config, use_chunk: bool):
        super().__init__()
        self.n_head = cfg.n_head
        self.n_embd = cfg.n_embd
        self.use_chunk = use_chunk
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.register_buffer(
            "bias", torch.tril(torch.ones(cfg.block_size, cfg.block_size))
            .view(1, 1, cfg.block_size, cfg.block_size))

    def forward(self, x):
        B, T, C = x.size()
        qkv = self.c_attn(x)
        if self.use_chunk:
            q, k, v = qkv.chunk(3, dim=-1)
        else:
            q, k, v = qkv.split(self.n_embd, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class GPT2MLP(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, cfg: GPT2Config, use_chunk: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = GPT2Attention(cfg, use_chunk)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = GPT2MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    """tokens: int64 [B, T] (T <= block_size) -> logits float32 [B, T, vocab]."""

    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        # The first block splits q/k/v with .split, the others with .chunk.
        self.h = nn.ModuleList([GPT2Block(cfg, use_chunk=(i % 2 == 1)) for i in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=cfg.lm_head_bias)

    def forward(self, idx):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def make_gpt2(seed: int = 0, lm_head_bias: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    model = GPT2(GPT2Config(lm_head_bias=lm_head_bias))
    with torch.no_grad():
        # Non-trivial LayerNorm parameters so that weight and bias both matter.
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("ln_"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def gpt2_tokens(seq_len: int, batch: int = 1, seed: int = 1) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, GPT2Config().vocab_size, (batch, seq_len), generator=g).numpy()


# --------------------------------------------------------------------------- MLP

class MLP(nn.Module):
    """float32 [B, 16] -> [B, 8]: Linear, ReLU, Linear, GELU, Linear (with biases)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(),
                                 nn.Linear(32, 8))

    def forward(self, x):
        return self.net(x)


def make_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MLP().eval()


def mlp_input(batch: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 16)).astype(np.float32)


# --------------------------------------------------------------------------- two methods

class TwoMethods(nn.Module):
    """`forward` and `other` share the same Linear weights (stored once after dedup)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 24)
        self.out = nn.Linear(24, 4)

    def forward(self, x):
        return self.out(torch.relu(self.proj(x)))

    def other(self, x, y):
        h = torch.tanh(self.proj(x)) * 2.0
        return self.out(h) - y, h.sum(-1)


def make_two_methods(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TwoMethods().eval()


# --------------------------------------------------------------------------- unsupported op

class UsesRfft(nn.Module):
    """torch.fft.rfft has no kiln op: compiling this must fail with a clear error."""

    def forward(self, x):
        h = x * 2.0
        spectrum = torch.fft.rfft(h)  # RFFT_LINE: the line the error must name
        return spectrum.abs()


def rfft_source_line() -> int:
    """The line number of the torch.fft.rfft call in this file."""
    with open(os.path.abspath(__file__).replace(".pyc", ".py")) as f:
        for number, line in enumerate(f, start=1):
            if "RFFT_LINE" in line and "torch.fft.rfft" in line:
                return number
    raise AssertionError("rfft call not found in models.py")


# --------------------------------------------------------------------------- op cases

class Fn(nn.Module):
    """Wraps a function so it can be traced and saved as a module."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


@dataclass
class OpCase:
    name: str
    module: nn.Module
    make_inputs: Callable[[np.random.Generator], List[np.ndarray]]
    aten: Tuple[str, ...]  # aten ops the traced graph must contain (what this case tests)

    def inputs(self) -> List[np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        return [np.ascontiguousarray(a) for a in self.make_inputs(rng)]


def f32(*shape, lo=-2.0, hi=2.0):
    return lambda rng: rng.uniform(lo, hi, size=shape).astype(np.float32)


def i64(*shape, lo=-5, hi=6):
    return lambda rng: rng.integers(lo, hi, size=shape).astype(np.int64)


def nonzero_i64(*shape, lo=-5, hi=6):
    def make(rng):
        a = rng.integers(lo, hi, size=shape).astype(np.int64)
        a[a == 0] = 3
        return a
    return make


def small_ints_f32(*shape):
    """Float32 holding small integers, so that eq/ne/le/ge are exercised on ties."""
    return lambda rng: rng.integers(-2, 3, size=shape).astype(np.float32)


def with_halves(*shape):
    """Float32 including exact .5 values: tests round-half-to-even."""
    def make(rng):
        a = rng.uniform(-4, 4, size=shape).astype(np.float32)
        flat = a.reshape(-1)
        halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.5], np.float32)
        flat[:len(halves)] = halves[:flat.size]
        return a
    return make


def ins(*makers):
    return lambda rng: [m(rng) for m in makers]


OP_CASES: List[OpCase] = []


def case(name, fn, inputs, *aten, module=None):
    OP_CASES.append(OpCase(name, module if module is not None else Fn(fn), inputs,
                           tuple("aten::" + a for a in aten)))


X35 = ins(f32(3, 5))
POS35 = ins(f32(3, 5, lo=0.5, hi=3.0))

# unary -------------------------------------------------------------------------
case("unary_neg", lambda x: -x, X35, "neg")
case("unary_abs", lambda x: x.abs(), X35, "abs")
case("unary_exp", lambda x: torch.exp(x), X35, "exp")
case("unary_log", lambda x: torch.log(x), POS35, "log")
case("unary_sqrt", lambda x: torch.sqrt(x), POS35, "sqrt")
case("unary_rsqrt", lambda x: torch.rsqrt(x), POS35, "rsqrt")
case("unary_reciprocal", lambda x: torch.reciprocal(x), POS35, "reciprocal")
case("unary_sin", lambda x: torch.sin(x), ins(f32(3, 5, lo=-3, hi=3)), "sin")
case("unary_cos", lambda x: torch.cos(x), ins(f32(3, 5, lo=-3, hi=3)), "cos")
case("unary_tanh", lambda x: torch.tanh(x), X35, "tanh")
case("unary_sigmoid", lambda x: torch.sigmoid(x), X35, "sigmoid")
case("unary_relu", lambda x: torch.relu(x), X35, "relu")
case("unary_silu", lambda x: F.silu(x), X35, "silu")
case("unary_gelu", lambda x: F.gelu(x), X35, "gelu")
case("unary_gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), X35, "gelu")
case("unary_erf", lambda x: torch.erf(x), X35, "erf")
case("unary_logical_not", lambda x: torch.logical_not(x > 0), X35, "logical_not")
case("unary_floor", lambda x: torch.floor(x), ins(with_halves(4, 5)), "floor")
case("unary_ceil", lambda x: torch.ceil(x), ins(with_halves(4, 5)), "ceil")
case("unary_round", lambda x: torch.round(x), ins(with_halves(4, 5)), "round")
case("unary_neg_abs_i64", lambda a: (-a, a.abs()), ins(i64(3, 4)), "neg", "abs")
case("unary_sqrt_i64", lambda a: torch.sqrt(a), ins(i64(3, 4, lo=0, hi=50)), "sqrt")

# binary ------------------------------------------------------------------------
case("binary_add_broadcast", lambda a, b: a + b, ins(f32(3, 1, 5), f32(4, 5)), "add")
case("binary_add_alpha", lambda a, b: torch.add(a, b, alpha=0.5), ins(f32(3, 4), f32(3, 4)), "add")
case("binary_sub_alpha", lambda a, b: torch.sub(a, b, alpha=2), ins(f32(3, 4), f32(4)), "sub")
case("binary_rsub_scalar", lambda x: 1.5 - x, X35, "rsub")
case("binary_mul_broadcast", lambda a, b: a * b * 3.0, ins(f32(2, 3, 4), f32(4)), "mul")
case("binary_div", lambda a, b: a / b, ins(f32(3, 4), f32(3, 4, lo=0.5, hi=2.0)), "div")
case("binary_div_scalar", lambda x: (x / 7.0, 2.0 / x), POS35, "div", "reciprocal")
case("binary_div_i64_true", lambda a, b: a / b, ins(i64(3, 4), nonzero_i64(3, 4)), "div")
case("binary_floor_div_f32", lambda a, b: torch.div(a, b, rounding_mode="floor"),
     ins(f32(3, 4, lo=-6, hi=6), f32(3, 4, lo=0.5, hi=2.0)), "div")
case("binary_floor_div_i64",
     lambda a, b: (torch.div(a, b, rounding_mode="floor"), torch.floor_divide(a, 3)),
     ins(i64(3, 4, lo=-20, hi=20), nonzero_i64(3, 4)), "div", "floor_divide")
case("binary_trunc_div", lambda a, b, x: (torch.div(a, b, rounding_mode="trunc"),
                                          torch.div(x, 0.75, rounding_mode="trunc")),
     ins(i64(3, 4, lo=-20, hi=20), nonzero_i64(3, 4), f32(3, 4, lo=-5, hi=5)), "div")
case("binary_remainder_f32", lambda a, b: torch.remainder(a, b),
     ins(f32(3, 4, lo=-6, hi=6), f32(3, 4, lo=0.5, hi=2.0)), "remainder")
case("binary_remainder_i64", lambda a, b: (a % b, a % 3),
     ins(i64(3, 4, lo=-20, hi=20), nonzero_i64(3, 4)), "remainder")
case("binary_pow_scalar_exponent", lambda x, p: (x.pow(3), p ** 0.5, x.pow(2)),
     ins(f32(3, 4), f32(3, 4, lo=0.1, hi=3)), "pow")
case("binary_pow_tensor", lambda p, e: torch.pow(p, e),
     ins(f32(3, 4, lo=0.5, hi=2), f32(3, 4, lo=-2, hi=2)), "pow")
case("binary_pow_scalar_base", lambda x: 2.0 ** x, X35, "pow")
case("binary_maximum_minimum", lambda a, b: (torch.maximum(a, b), torch.minimum(a, b)),
     ins(f32(3, 4), f32(4)), "maximum", "minimum")
case("binary_square", lambda x: x.square(), X35, "square")
case("binary_i64_arith", lambda a, b: (a * 3 + b - 1) * a, ins(i64(3, 4), i64(3, 4)), "mul", "add", "sub")
case("binary_i64_times_float", lambda a: a * 0.5, ins(i64(3, 4)), "mul")
case("binary_f32_plus_i64", lambda x, a: x + a, ins(f32(3, 4), i64(3, 4)), "add")

# compare -----------------------------------------------------------------------
CMP_INS = ins(small_ints_f32(3, 4), small_ints_f32(4))
case("compare_eq", lambda a, b: a == b, CMP_INS, "eq")
case("compare_ne", lambda a, b: a != b, CMP_INS, "ne")
case("compare_lt", lambda a, b: a < b, CMP_INS, "lt")
case("compare_le", lambda a, b: a <= b, CMP_INS, "le")
case("compare_gt", lambda a, b: a > b, CMP_INS, "gt")
case("compare_ge", lambda a, b: a >= b, CMP_INS, "ge")
case("compare_scalar", lambda x: (x > 0.5, x <= 0, x == 1), ins(small_ints_f32(3, 4)), "gt", "le", "eq")
case("compare_i64", lambda a, b: (a == b, a < 2), ins(i64(3, 4, lo=-2, hi=3), i64(3, 4, lo=-2, hi=3)),
     "eq", "lt")
case("compare_logical", lambda a, b: (torch.logical_and(a > 0, b > 0), torch.logical_or(a > 0, b > 0),
                                      torch.logical_xor(a > 0, b > 0)),
     ins(f32(3, 4), f32(3, 4)), "logical_and", "logical_or", "logical_xor")

# where / masked_fill ------------------------------------------------------------
case("where_broadcast", lambda c, a, b: torch.where(c > 0, a, b),
     ins(f32(3, 1), f32(3, 4), f32(4)), "where")
case("where_scalar", lambda x: torch.where(x > 0, x, 0.0), X35, "where")
case("masked_fill", lambda x: (x.masked_fill(x < 0, -1.0), x.masked_fill(x > 1, float("-inf"))),
     X35, "masked_fill")

# cast --------------------------------------------------------------------------
case("cast_f32_to_i64", lambda x: (x * 3).to(torch.int64), X35, "to")
case("cast_i64_to_f32", lambda a: a.float() * 0.25, ins(i64(3, 4)), "to")
case("cast_bool_to_f32_i64", lambda x: ((x > 0).float(), (x > 0).long()), X35, "to")
case("cast_f32_to_i32", lambda x: (x * 3).int(), X35, "to")
case("cast_f32_to_bool", lambda x: x.bool(), ins(small_ints_f32(3, 4)), "to")
case("cast_f16_roundtrip", lambda x: x.half().float(), ins(f32(4, 6, lo=-100, hi=100)), "to")
case("cast_bf16_roundtrip", lambda x: x.to(torch.bfloat16).float(), ins(f32(4, 6, lo=-100, hi=100)), "to")
case("cast_type_as", lambda x, a: x.type_as(a) + a, ins(f32(3, 4, lo=-9, hi=9), i64(3, 4)), "type_as")

# clamp -------------------------------------------------------------------------
case("clamp_both", lambda x: torch.clamp(x, -0.5, 0.5), X35, "clamp")
case("clamp_min_only", lambda x: x.clamp(min=0.1), X35, "clamp")
case("clamp_max_only", lambda x: x.clamp(max=1.0), X35, "clamp")
case("clamp_i64", lambda a: a.clamp(-2, 3), ins(i64(3, 4)), "clamp")

# reduce ------------------------------------------------------------------------
X234 = ins(f32(2, 3, 4))
case("reduce_sum_all", lambda x: x.sum(), X234, "sum")
case("reduce_sum_keepdim", lambda x: x.sum(dim=1, keepdim=True), X234, "sum")
case("reduce_sum_dims", lambda x: x.sum(dim=(0, 2)), X234, "sum")
case("reduce_mean_keepdim", lambda x: x.mean(-1, keepdim=True), X234, "mean")
case("reduce_mean_all", lambda x: x.mean(), X234, "mean")
case("reduce_mean_dims", lambda x: x.mean(dim=(1, 2)), X234, "mean")
case("reduce_amax_amin", lambda x: (x.amax(dim=-1), x.amin(dim=(0, 1), keepdim=True)), X234, "amax", "amin")
case("reduce_max_min_all", lambda x: (x.max(), x.min()), X234, "max", "min")
case("reduce_prod", lambda x: x.prod(dim=1), ins(f32(2, 3, 4, lo=0.5, hi=1.5)), "prod")
case("reduce_sum_i64", lambda a: a.sum(dim=0), ins(i64(3, 4)), "sum")

# argmax / softmax ---------------------------------------------------------------
case("argmax_dim", lambda x: torch.argmax(x, dim=-1), X234, "argmax")
case("argmax_keepdim", lambda x: x.argmax(dim=1, keepdim=True), X234, "argmax")
case("softmax_dim1", lambda x: F.softmax(x, dim=1), X234, "softmax")
case("softmax_last", lambda x: x.softmax(-1), ins(f32(2, 3, 4, lo=-20, hi=20)), "softmax")
case("log_softmax", lambda x: F.log_softmax(x, dim=-1), X234, "log_softmax")

# normalisation -----------------------------------------------------------------
def _seeded(factory):
    torch.manual_seed(0)
    m = factory()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


case("layer_norm_affine", None, ins(f32(2, 3, 8)), "layer_norm", module=_seeded(lambda: nn.LayerNorm(8)))
case("layer_norm_no_affine", None, ins(f32(2, 3, 8)), "layer_norm",
     module=_seeded(lambda: nn.LayerNorm(8, elementwise_affine=False)))
case("layer_norm_2d", None, ins(f32(2, 4, 8)), "layer_norm", module=_seeded(lambda: nn.LayerNorm((4, 8))))
case("rms_norm", None, ins(f32(2, 5, 16)), "rsqrt", "mean",
     module=_seeded(lambda: tiny_llama.RMSNorm(16, 1e-5)))

# linear / matmul / embedding ------------------------------------------------------
case("linear_bias", None, ins(f32(3, 8)), "linear", module=_seeded(lambda: nn.Linear(8, 6)))
case("linear_no_bias_3d", None, ins(f32(2, 3, 8)), "linear",
     module=_seeded(lambda: nn.Linear(8, 6, bias=False)))
case("linear_runtime_weight", lambda x, w, b: F.linear(x, w, b), ins(f32(3, 8), f32(6, 8), f32(6)), "linear")
case("matmul_2d", lambda a, b: a @ b, ins(f32(3, 4), f32(4, 5)), "matmul")
case("matmul_1d_1d", lambda a, b: torch.matmul(a, b), ins(f32(4), f32(4)), "matmul")
case("matmul_2d_1d", lambda a, b: torch.matmul(a, b), ins(f32(3, 4), f32(4)), "matmul")
case("matmul_1d_2d", lambda a, b: torch.matmul(a, b), ins(f32(4), f32(4, 5)), "matmul")
case("matmul_batched_broadcast", lambda a, b: a @ b, ins(f32(2, 1, 3, 4), f32(5, 4, 6)), "matmul")
case("bmm", lambda a, b: torch.bmm(a, b), ins(f32(2, 3, 4), f32(2, 4, 5)), "bmm")
case("mm", lambda a, b: torch.mm(a, b), ins(f32(3, 4), f32(4, 5)), "mm")
case("embedding", None, ins(i64(2, 3, lo=0, hi=10)), "embedding",
     module=_seeded(lambda: nn.Embedding(10, 4)))
case("index_select", lambda x, idx: torch.index_select(x, 1, idx),
     ins(f32(3, 5), i64(4, lo=0, hi=5)), "index_select")
case("index_tensor", lambda x, idx: x[idx], ins(f32(5, 3), i64(2, 2, lo=0, hi=5)), "index")

# shape ops ---------------------------------------------------------------------
case("reshape_const", lambda x: x.reshape(2, -1), X234, "reshape")
case("view_dynamic", lambda x: x.view(x.size(0) * x.size(1), -1), X234, "view", "size")
case("view_as_reshape_shape_of", lambda x, y: (x.view_as(y), y.reshape(x.shape)),
     ins(f32(2, 6), f32(3, 4)), "view_as", "reshape")
case("flatten", lambda x: (torch.flatten(x, 1, 2), x.flatten()), ins(f32(2, 3, 4, 2)), "flatten")
case("expand", lambda x, r: (x.expand(3, 4), r.expand(5, -1), x.expand(2, 3, 4)),
     ins(f32(3, 1), f32(1, 4)), "expand")
case("expand_as", lambda x, y: x.expand_as(y) + y, ins(f32(1, 4), f32(3, 4)), "expand_as")
case("permute", lambda x: (x.permute(2, 0, 1), x.permute(0, -1, 1)), X234, "permute")
case("transpose", lambda x, m: (x.transpose(0, 2), m.t(), x.transpose(-1, -2)),
     ins(f32(2, 3, 4), f32(3, 5)), "transpose", "t")
case("unsqueeze", lambda x: (x.unsqueeze(0), x.unsqueeze(-1), x.unsqueeze(1)), ins(f32(3, 4)), "unsqueeze")
case("squeeze", lambda x: (x.squeeze(), x.squeeze(2), x.squeeze(1)), ins(f32(1, 3, 1, 4)), "squeeze")
case("slice", lambda x: (x[:, 1:4], x[..., ::2], x[:, -3:], x[:-1], x[1:, 2:100]),
     ins(f32(3, 6)), "slice")
case("slice_dynamic_end", lambda x: x[:, : x.size(1) - 1], ins(f32(3, 6)), "slice", "size")
case("select", lambda x: (x[:, 2], x[-1], x.select(1, -1)), ins(f32(3, 4, 5)), "select")
case("split_size", lambda x: torch.split(x, 2, dim=1), ins(f32(3, 5)), "split")
case("split_sizes", lambda x: x.split([1, 3], dim=-1), ins(f32(3, 4)), "split_with_sizes")
case("chunk", lambda x: x.chunk(3, dim=1), ins(f32(2, 7)), "chunk")
case("cat", lambda a, b: (torch.cat([a, b], -1), torch.cat([a, a * 2, a], 0)),
     ins(f32(2, 3), f32(2, 4)), "cat")
case("cat_promote", lambda x, a: torch.cat([x, a], dim=1), ins(f32(2, 3), i64(2, 2)), "cat")
case("stack", lambda a, b: (torch.stack([a, b], dim=1), torch.stack([a, b, a], -1)),
     ins(f32(2, 3), f32(2, 3)), "stack")
case("repeat_interleave", lambda x: (x.repeat_interleave(3, dim=0), x.repeat_interleave(2, dim=-1)),
     ins(f32(2, 3)), "repeat_interleave")
case("repeat", lambda x: (x.repeat(2, 1, 3), x.repeat(2, 2, 1, 1)), X234, "repeat")
case("triangular", lambda x, b: (torch.triu(x, 1), torch.tril(x), torch.tril(x, -1), torch.triu(b)),
     ins(f32(4, 5), f32(2, 4, 4)), "triu", "tril")

# creation ----------------------------------------------------------------------
case("arange_dynamic_end", lambda x: torch.arange(x.size(1)) + x.size(0), ins(f32(3, 7)), "arange")
case("arange_start_end_step", lambda x: (torch.arange(2, x.size(0) + 5), torch.arange(1, x.size(1) * 3, 3)),
     ins(f32(3, 7)), "arange")
case("arange_float", lambda x: (torch.arange(0, x.size(1), dtype=torch.float32) * 0.5 + x,
                                torch.arange(0.0, 2.0, 0.25)),
     ins(f32(2, 5)), "arange")
case("full", lambda x: (x + torch.full((3, 4), 1.5), torch.full((x.size(0), x.size(1)), 7.0)),
     ins(f32(3, 4)), "full")
case("zeros_ones", lambda x, a: (torch.zeros(x.size(0), 2) + 1, torch.ones(x.shape) * x,
                                 torch.zeros(3, dtype=torch.long) + a),
     ins(f32(3, 4), i64(3)), "zeros", "ones")
case("full_like", lambda x: (torch.zeros_like(x), torch.ones_like(x) + x, torch.full_like(x, 7.0),
                             torch.ones_like(x, dtype=torch.int64)),
     ins(f32(3, 4)), "zeros_like", "ones_like", "full_like")
case("size_as_scalar", lambda x: x * x.size(1) + x.size(0), ins(f32(3, 4)), "size")

# plumbing ops the front end maps onto others ----------------------------------------
case("clone_contiguous_detach", lambda x: (x.clone() * 2, x.t().contiguous(), x.detach() + 1),
     ins(f32(3, 4)), "clone", "contiguous", "detach")
case("dropout_eval", lambda x: F.dropout(x, 0.5, training=False) + 1, X35, "dropout")
case("outer", lambda a, b: torch.outer(a, b), ins(f32(4), f32(5)), "outer")


def op_case(name: str) -> OpCase:
    for c in OP_CASES:
        if c.name == name:
            return c
    raise KeyError(name)
