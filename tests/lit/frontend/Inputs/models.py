"""Small PyTorch models traced/scripted to TorchScript archives for the
front-end lit tests.

usage: models.py NAME OUT.pt

Each builder is deterministic (fixed seed) so the CHECK lines can rely on
shapes and names. Run with the Python that has torch (/usr/bin/python3).
"""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)


# ---------------------------------------------------------------------------
# mlp: Linear -> GELU -> LayerNorm -> Linear -> log_softmax, plus ReLU/tanh.
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 64)
        self.norm = nn.LayerNorm(64)
        self.fc2 = nn.Linear(64, 10, bias=False)

    def forward(self, x):
        h = F.gelu(self.fc1(x))
        h = self.norm(h)
        h = torch.relu(h) + torch.tanh(h) * 0.5
        return F.log_softmax(self.fc2(h), dim=-1)


def build_mlp(path):
    torch.jit.trace(MLP().eval(), torch.randn(2, 16)).save(path)


# ---------------------------------------------------------------------------
# llama: RMSNorm + rotary embeddings + causal masked attention + SwiGLU, with
# grouped-query attention (repeat_interleave) and a final argmax.
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.rand(dim) + 0.5)

    def forward(self, x):
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        att = att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att.float(), dim=-1).type_as(q)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.o(y)


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Llama(nn.Module):
    def __init__(self, vocab=64, dim=32, heads=4, kv_heads=2, max_seq=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, heads, kv_heads)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, 3 * dim)
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        head_dim = dim // heads
        inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        freqs = torch.outer(torch.arange(max_seq).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos()[None, None])
        self.register_buffer("sin", emb.sin()[None, None])
        self.register_buffer("mask", torch.tril(torch.ones(max_seq, max_seq)).view(1, 1, max_seq, max_seq))

    def forward(self, tokens):
        T = tokens.size(1)
        x = self.embed(tokens)
        cos, sin = self.cos[:, :, :T], self.sin[:, :, :T]
        x = x + self.attn(self.norm1(x), cos, sin, self.mask)
        x = x + self.mlp(self.norm2(x))
        logits = self.head(self.norm(x))
        return logits, torch.argmax(logits[:, -1, :], dim=-1)


def build_llama(path):
    model = Llama().eval()
    torch.jit.trace(model, torch.randint(0, 64, (1, 8))).save(path)


# ---------------------------------------------------------------------------
# two_methods: torch.jit.trace_module with `prefill` and `decode` (no
# forward); GPT-2 style blocks (LayerNorm, fused qkv split, tanh GELU,
# learned positions from arange, triu mask).
class GPTBlock(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).permute(0, 2, 1, 3)
        k = k.view(B, T, self.heads, C // self.heads).permute(0, 2, 1, 3)
        v = v.view(B, T, self.heads, C // self.heads).permute(0, 2, 1, 3)
        att = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(C // self.heads))
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        att = att.masked_fill(mask, -1e9).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(64, 32)
        self.wpe = nn.Embedding(16, 32)
        self.block = GPTBlock()
        self.ln_f = nn.LayerNorm(32)

    def prefill(self, tokens):
        pos = torch.arange(0, tokens.size(1), dtype=torch.long).unsqueeze(0)
        x = self.block(self.wte(tokens) + self.wpe(pos))
        return F.linear(self.ln_f(x), self.wte.weight)

    def decode(self, token, pos):
        x = self.block(self.wte(token) + self.wpe(pos))
        return F.linear(self.ln_f(x), self.wte.weight)[:, -1]


def build_two_methods(path):
    model = GPT().eval()
    tokens = torch.randint(0, 64, (1, 8))
    traced = torch.jit.trace_module(
        model, {"prefill": (tokens,), "decode": (tokens[:, :1], torch.tensor([[8]]))})
    traced.save(path)


# ---------------------------------------------------------------------------
# scripted: torch.jit.script with int arithmetic on sizes, a list index and
# tuple outputs.
class Scripted(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.full((8,), 2.0))

    def forward(self, x: torch.Tensor, n: int):
        half = x.size(-1) // 2
        shape = x.shape
        y = x[..., :half] * self.scale[:half]
        z = torch.clamp(x, min=-1.0, max=1.0).sum(dim=0)
        return y.reshape(shape[0], -1) + n, z


def build_scripted(path):
    torch.jit.script(Scripted().eval()).save(path)


# ---------------------------------------------------------------------------
# promotion: Python numbers next to tensors of each category, integer
# tensors from arange/argmax, comparisons, where, casts.
class Promotion(nn.Module):
    def forward(self, x):
        n = torch.arange(x.size(0))            # i64
        a = n * 2                               # i64 * int -> i64
        b = n * 0.5                             # i64 * float -> f32
        c = n / 2                               # true division -> f32
        d = (n > 1) & (n < 5)                   # bool
        e = torch.where(d, x, 0.0)              # f32
        f = d.long() + 1                        # cast, i64
        g = x.half() * 2.0                      # f16 stays f16
        return a, b, c, e, f, g, n // 3, 1 - x, x.pow(2).sqrt()


def build_promotion(path):
    torch.jit.trace(Promotion().eval(), torch.randn(8)).save(path)


# ---------------------------------------------------------------------------
# constants: small vs large tensor constants, float64 -> f32, float16 kept,
# an int64 table used with index_select and x[idx].
class Constants(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("big", torch.randn(10, 10))              # 100 > 64
        self.register_buffer("small", torch.arange(4).float())         # 4
        self.register_buffer("dbl", torch.ones(3, dtype=torch.float64))
        self.register_buffer("h16", torch.ones(2, 2, dtype=torch.float16))
        self.register_buffer("idx", torch.tensor([2, 0, 1]))

    def forward(self, x, ids):
        y = x @ self.big
        z = y[:, :4] + self.small
        w = torch.index_select(z, 1, self.idx) * self.dbl
        return w, self.h16 * 3, x[ids]


def build_constants(path):
    torch.jit.trace(Constants().eval(), (torch.randn(2, 10), torch.tensor([1, 0]))).save(path)


BUILDERS = {
    "mlp": build_mlp,
    "llama": build_llama,
    "two_methods": build_two_methods,
    "scripted": build_scripted,
    "promotion": build_promotion,
    "constants": build_constants,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in BUILDERS:
        sys.exit("usage: models.py {%s} OUT.pt" % "|".join(BUILDERS))
    BUILDERS[sys.argv[1]](sys.argv[2])
