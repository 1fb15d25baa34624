"""`kiln export-hf`: a Hugging Face MobileLLM checkpoint -> one Kiln program.

    python3 -m kiln.export_hf CHECKPOINT_DIR -o OUT.kiln [--quantize none|int8|int4]
        [--group-size N] [--max-seq-len N] [--prefill-chunk C]
        [--methods prefill,decode,prefill_last]
        [--kv-cache-dtype f32|f16]
        [--verify] [--verify-tokens N] [--verify-prompts K] [--report FILE.json]

(`kiln export-hf ...` runs this with Debian's python3.) Steps (docs/llm.md):
1. load: config.json selects the family; the weights load into our own model
   (kiln.models.mobilellm), 16-bit checkpoints computing in float32;
2. wrap: `LLMExportModule` has `prefill(tokens[1, C], start_pos[1])`,
   `decode(tokens[1, 1], start_pos[1])` and `prefill_last(tokens[1, C], start_pos[1],
   last[1])` (prefill returning only row `last`'s logits [1, 1, V]), the KV cache as buffers `k_cache_{j}` /
   `v_cache_{j}` [1, Hkv, S, D] (one pair per executed layer; f32, or f16 with
   --kv-cache-dtype f16) written with `index_copy_`, attention through `torch.ops.kiln.cached_attention`, and RoPE rows
   gathered from precomputed [S, D] tables;
3. trace the methods (torch.jit.trace_module) and save them with input specs;
4. compile with `kiln compile` (metadata keys of docs/llm.md §2, config.json,
   tokenizer asset), into a temporary file renamed to OUT only on success;
5. --verify: prefill logits of the program (`kiln run`) against eager PyTorch, and
   greedy tokens (`kiln generate`) against the eager model with a KV cache.
Errors exit 1 with a message; progress goes to stderr.
"""
import argparse
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

import kiln.torchscript
from kiln.models.mobilellm import (ConfigError, MobileLLMConfig, MobileLLMForCausalLM,
                                   load_model, rope_tables)

__all__ = ["LLMExportModule", "run_export_module", "export", "main", "ExportError"]

REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# --verify thresholds. fp32: prefill logits relative max error (max |a-b| / max |b|).
# Quantized programs differ from fp32 eager by design: cosine similarity of the
# prefill logits rows and top-1 agreement over the prefill positions instead.
FP32_REL_TOL = 1e-4
TIE_MARGIN = 1e-4
# int4 (group-wise) moves logits enough that top-1 agreement on near-uniform logits
# (e.g. random weights) says little: it is reported but not gated (threshold 0).
QUANT_THRESHOLDS = {"int8": {"cosine": 0.99, "top1": 0.90},
                    "int4": {"cosine": 0.90, "top1": 0.0}}


class ExportError(RuntimeError):
    """An export step failed; the message says which and why."""


# --kv-cache-dtype: the KV cache's element type (docs/decisions.md 8).
KV_CACHE_DTYPES = {"f32": torch.float32, "f16": torch.float16}

# prefill_last: the last prompt chunk with one row's logits (docs/llm.md §1).
DEFAULT_METHODS = ("prefill", "decode", "prefill_last")


def log(msg: str) -> None:
    print(f"export-hf: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------- the module

class LLMExportModule(nn.Module):
    """prefill/decode over a KV cache kept in buffers (docs/llm.md §1)."""

    def __init__(self, model: MobileLLMForCausalLM, max_seq_len: int,
                 kv_dtype: torch.dtype = torch.float32):
        super().__init__()
        import kiln.ops  # noqa: F401  registers torch.ops.kiln.cached_attention
        c = model.config
        self.model = model
        self.config = c
        self.max_seq_len = max_seq_len
        cos, sin, perm = rope_tables(c, max_seq_len)
        self.register_buffer("rope_cos", cos)
        self.register_buffer("rope_sin", sin)
        self.register_buffer("rope_perm", perm)
        self.num_caches = c.num_executed_layers
        # The cache's element type (docs/decisions.md 8): f32, or f16 (k and v
        # rounded to half when written; attention computes in f32).
        self.kv_dtype = kv_dtype
        shape = (1, c.num_key_value_heads, max_seq_len, c.head_dim)
        for j in range(self.num_caches):
            self.register_buffer(f"k_cache_{j}", torch.zeros(shape, dtype=kv_dtype))
            self.register_buffer(f"v_cache_{j}", torch.zeros(shape, dtype=kv_dtype))
        self.scale = float(c.head_dim ** -0.5)

    def reset_cache(self) -> None:
        with torch.no_grad():
            for j in range(self.num_caches):
                getattr(self, f"k_cache_{j}").zero_()
                getattr(self, f"v_cache_{j}").zero_()

    def _step(self, tokens: torch.Tensor, start_pos: torch.Tensor,
              last: Optional[torch.Tensor] = None) -> torch.Tensor:
        t = tokens.shape[1]
        positions = start_pos + torch.arange(t, dtype=torch.int64)
        cos = self.rope_cos.index_select(0, positions)
        sin = self.rope_sin.index_select(0, positions)

        def attend_for_layer(j):
            k_cache = getattr(self, f"k_cache_{j}")
            v_cache = getattr(self, f"v_cache_{j}")

            def attend(q, k, v):
                if self.kv_dtype != torch.float32:
                    k, v = k.to(self.kv_dtype), v.to(self.kv_dtype)
                k_cache.index_copy_(2, positions, k)
                v_cache.index_copy_(2, positions, v)
                return torch.ops.kiln.cached_attention(q, k_cache, v_cache, start_pos,
                                                       self.scale)
            return attend

        x = self.model.model.embed_tokens(tokens)
        x = self.model.run_layers(x, cos, sin, self.rope_perm, attend_for_layer)
        if last is not None:  # one row: the final norm and lm_head for it alone
            x = x.index_select(1, last)
        return self.model.logits(x)

    def prefill(self, tokens: torch.Tensor, start_pos: torch.Tensor) -> torch.Tensor:
        return self._step(tokens, start_pos)

    def decode(self, tokens: torch.Tensor, start_pos: torch.Tensor) -> torch.Tensor:
        return self._step(tokens, start_pos)

    def prefill_last(self, tokens: torch.Tensor, start_pos: torch.Tensor,
                     last: torch.Tensor) -> torch.Tensor:
        """prefill of the prompt's last chunk returning only row `last`'s logits [1, 1, V]."""
        return self._step(tokens, start_pos, last)


def prefill_chunks(n: int, chunk: int):
    """Chunk start positions for a prompt of n tokens (docs/llm.md §3)."""
    starts = []
    s = 0
    while s + chunk <= n:
        starts.append(s)
        s += chunk
    if not starts or starts[-1] + chunk < n:
        starts.append(max(0, n - chunk))
    return starts


@torch.no_grad()
def run_export_module(mod: LLMExportModule, prompt: Sequence[int], n: int, chunk: int):
    """Greedy generation with the export module run eagerly, following the runner's
    schedule (docs/llm.md §3). Returns (tokens, next-token logits of each step [n, V])."""
    prompt = list(prompt)
    if len(prompt) + 1 > mod.max_seq_len:
        raise ExportError(f"prompt of {len(prompt)} tokens does not fit max_seq_len "
                          f"{mod.max_seq_len}")
    mod.reset_cache()
    last = None
    for start in prefill_chunks(len(prompt), chunk):
        ids = prompt[start:start + chunk]
        ids = ids + [0] * (chunk - len(ids))
        logits = mod.prefill(torch.tensor([ids]), torch.tensor([start]))
    last = logits[0, len(prompt) - 1 - start]
    tokens, steps = [], []
    p = len(prompt)
    while True:
        tok = int(torch.argmax(last))
        tokens.append(tok)
        steps.append(last.clone())
        if len(tokens) == n or p == mod.max_seq_len:
            break
        last = mod.decode(torch.tensor([[tok]]), torch.tensor([p]))[0, 0]
        p += 1
    return tokens, torch.stack(steps)


# ------------------------------------------------------------ helpers

def kiln_bin() -> str:
    path = os.environ.get("KILN_BIN") or os.path.join(REPO_DIR, "build", "bin", "kiln")
    if not os.path.isfile(path):
        raise ExportError(f"kiln binary not found at {path} (set KILN_BIN or build it)")
    return path


def _run(args: List[str], what: str, timeout: Optional[float] = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              errors="replace", timeout=timeout)
    except OSError as e:
        raise ExportError(f"{what}: cannot run {args[0]}: {e}") from e
    except subprocess.TimeoutExpired as e:
        raise ExportError(f"{what}: timed out after {timeout}s") from e
    if proc.returncode != 0:
        raise ExportError(f"{what} failed (exit {proc.returncode}): {' '.join(args)}\n"
                          f"{proc.stderr.strip()[-4000:]}")
    return proc


def tokenizer_info(ckpt: str, config: MobileLLMConfig):
    """(kind, path or None, add_bos) from the files next to config.json."""
    spm = os.path.join(ckpt, "tokenizer.model")
    tj = os.path.join(ckpt, "tokenizer.json")
    if os.path.isfile(spm):
        kind, path = "sentencepiece", spm
    elif os.path.isfile(tj):
        kind, path = "bpe", tj
    else:
        kind, path = "none", None
    add_bos = None
    tc = os.path.join(ckpt, "tokenizer_config.json")
    if os.path.isfile(tc):
        try:
            with open(tc, "r", encoding="utf-8") as f:
                v = json.load(f).get("add_bos_token")
            if isinstance(v, bool):
                add_bos = v
        except (OSError, ValueError, AttributeError):
            pass
    if add_bos is None and kind == "bpe":
        # Llama-3 style: the post-processor template inserts the BOS token.
        try:
            with open(tj, "r", encoding="utf-8") as f:
                post = json.load(f).get("post_processor")
            add_bos = bool(post) and "begin_of_text" in json.dumps(post)
        except (OSError, ValueError, AttributeError):
            add_bos = False
    if add_bos is None:
        add_bos = kind == "sentencepiece"
    if config.bos_token_id is None:
        add_bos = False
    return kind, path, add_bos


def eos_ids(ckpt: str, config: MobileLLMConfig) -> List[int]:
    ids = list(config.eos_token_ids)
    gc = os.path.join(ckpt, "generation_config.json")
    if os.path.isfile(gc):
        try:
            with open(gc, "r", encoding="utf-8") as f:
                v = json.load(f).get("eos_token_id")
            for x in ([v] if isinstance(v, int) else v or []):
                if isinstance(x, int) and x not in ids:
                    ids.append(x)
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    return ids


def sample_prompts(config: MobileLLMConfig, chunk: int, max_seq_len: int):
    """Deterministic token-id prompts: (prefill prompt of exactly C tokens, generation
    prompts: short (a padded chunk), exactly C, and longer than C (overlapping last
    chunk), those that leave room for at least one new token in the cache)."""
    g = torch.Generator().manual_seed(1234)
    v = config.vocab_size
    bos = [config.bos_token_id] if config.bos_token_id is not None else []
    low = min(3, v - 1)

    def rand(k):
        head = bos[:k]
        return head + torch.randint(low, v, (k - len(head),), generator=g).tolist()
    prefill = rand(chunk)
    gen = []
    for k in (min(7, chunk), chunk, chunk + chunk // 2 + 1):
        if k + 1 <= max_seq_len and k not in [len(p) for p in gen]:
            gen.append(prefill if k == chunk else rand(k))
    if not gen:
        gen.append(rand(1))
    return prefill, gen


# --------------------------------------------------------------- verify

def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def verify(out: str, model: MobileLLMForCausalLM, chunk: int, max_seq_len: int,
           n_tokens: int, quantize: str, methods: List[str], report: Dict,
           n_prompts: int = 3, kv_dtype: torch.dtype = torch.float32) -> None:
    exe = kiln_bin()
    # An fp32 program with an f16 KV cache is held to the fp32 tolerances
    # against the export module with the same f16 cache run eagerly (k and v
    # rounded alike); quantized programs against the model, with their
    # thresholds (which cover the f16 cache too).
    ref_mod = None
    if quantize == "none" and kv_dtype != torch.float32:
        ref_mod = LLMExportModule(model, max_seq_len, kv_dtype).eval()
    c = model.config
    full, prompts = sample_prompts(c, chunk, max_seq_len)
    prompts = prompts[:max(1, n_prompts)]
    failures = []
    res = {"prompts": [len(p) for p in prompts], "prefill": {}, "greedy": []}
    report["verify"] = res
    with tempfile.TemporaryDirectory(prefix="kiln-verify-") as tmp:
        # 1. prefill logits: a fresh process (zeroed cache), a prompt of exactly C tokens.
        tokens = np.array([full], dtype=np.int64)
        np.save(os.path.join(tmp, "tokens.npy"), tokens)
        np.save(os.path.join(tmp, "start_pos.npy"), np.array([0], dtype=np.int64))
        od = os.path.join(tmp, "prefill_out")
        _run([exe, "run", out, "--method", "prefill", "--input",
              os.path.join(tmp, "tokens.npy"), "--input", os.path.join(tmp, "start_pos.npy"),
              "--output-dir", od], "verify: kiln run prefill")
        got = np.load(os.path.join(od, "output0.npy"))
        with torch.no_grad():
            if ref_mod is not None:
                ref_mod.reset_cache()
                want = ref_mod.prefill(torch.from_numpy(tokens), torch.tensor([0])).numpy()
            else:
                want = model(torch.from_numpy(tokens)).numpy()
        if got.shape != want.shape:
            raise ExportError(f"verify: prefill logits shape {got.shape}, expected {want.shape}")
        rel = _rel_err(got, want)
        gf = got.reshape(-1, got.shape[-1]).astype(np.float64)
        wf = want.reshape(-1, want.shape[-1]).astype(np.float64)
        cos = float(np.min(np.sum(gf * wf, 1) / (np.linalg.norm(gf, axis=1)
                                                 * np.linalg.norm(wf, axis=1) + 1e-30)))
        top1 = float(np.mean(gf.argmax(1) == wf.argmax(1)))
        res["prefill"] = {"tokens": len(full), "rel_max_err": rel, "min_cosine": cos,
                          "top1_agreement": top1}
        if quantize == "none":
            res["prefill"]["tolerance"] = FP32_REL_TOL
            ok = rel <= FP32_REL_TOL
            log(f"verify: prefill logits ({len(full)} tokens) rel max err {rel:.3g} "
                f"(tolerance {FP32_REL_TOL:g}) {'ok' if ok else 'FAILED'}")
            if not ok:
                failures.append(f"prefill logits of the {len(full)}-token prompt: relative max "
                                f"error {rel:.3g} > {FP32_REL_TOL:g}")
        else:
            th = QUANT_THRESHOLDS[quantize]
            res["prefill"]["thresholds"] = th
            ok = cos >= th["cosine"] and top1 >= th["top1"]
            log(f"verify: prefill logits ({quantize}) min cosine {cos:.5f} (>= {th['cosine']}), "
                f"top-1 agreement {top1:.3f} (>= {th['top1']}), rel max err {rel:.3g} "
                f"{'ok' if ok else 'FAILED'}")
            if not ok:
                failures.append(f"{quantize} prefill logits: min cosine {cos:.5f} "
                                f"(threshold {th['cosine']}), top-1 agreement {top1:.3f} "
                                f"(threshold {th['top1']})")
        # 2. greedy tokens with `kiln generate`.
        if "decode" not in methods:
            res["greedy_skipped"] = "program has no decode method"
        else:
            for pi, prompt in enumerate(prompts):
                n = max(1, min(n_tokens, max_seq_len - len(prompt)))
                if ref_mod is not None:
                    want_toks, steps = run_export_module(ref_mod, prompt, n, chunk)
                    top2 = torch.topk(steps, 2, dim=-1).values
                    margins = (top2[:, 0] - top2[:, 1]).tolist()
                else:
                    want_toks, margins, _ = model.generate_greedy(prompt, n)
                proc = _run([exe, "generate", out, "--prompt-tokens",
                             ",".join(map(str, prompt)), "-n", str(n), "--print-token-ids",
                             "--ignore-eos"], f"verify: kiln generate (prompt {pi})")
                try:
                    got_toks = [int(x) for x in proc.stdout.split()]
                except ValueError:
                    raise ExportError(f"verify: kiln generate printed non-ids: "
                                      f"{proc.stdout[:200]!r}")
                entry = {"prompt": pi, "prompt_len": len(prompt), "tokens": n,
                         "min_margin": min(margins), "status": "identical"}
                diverge = next((i for i in range(min(len(got_toks), n))
                                if got_toks[i] != want_toks[i]), None)
                if diverge is None and len(got_toks) != n:
                    entry["status"] = "length"
                    failures.append(f"prompt {pi} ({len(prompt)} tokens): kiln generate gave "
                                    f"{len(got_toks)} tokens, expected {n}")
                elif diverge is not None:
                    m = margins[diverge]
                    entry.update(step=diverge, expected=want_toks[diverge],
                                 got=got_toks[diverge], margin=m)
                    if m < TIE_MARGIN:
                        entry["status"] = "tie"
                        log(f"verify: prompt {pi}: tokens differ at step {diverge} where eager's "
                            f"top-2 margin is {m:.2g} < {TIE_MARGIN:g}: a tie, not a failure")
                    elif quantize != "none":
                        entry["status"] = "diverged (quantized)"
                    else:
                        entry["status"] = "diverged"
                        failures.append(
                            f"prompt {pi} ({len(prompt)} tokens): greedy tokens diverge at step "
                            f"{diverge}: expected {want_toks[diverge]}, got {got_toks[diverge]} "
                            f"(eager top-2 margin {m:.3g})")
                res["greedy"].append(entry)
                log(f"verify: prompt {pi} ({len(prompt)} tokens): {n} greedy tokens "
                    f"{entry['status']}")
    if failures:
        res["status"] = "failed"
        raise ExportError("verify failed:\n  " + "\n  ".join(failures))
    res["status"] = "ok"


def inspect_program(out: str) -> Dict:
    proc = _run([kiln_bin(), "inspect", out, "--json"], "kiln inspect")
    try:
        return json.loads(proc.stdout)
    except ValueError as e:
        raise ExportError(f"kiln inspect --json printed invalid JSON: {e}") from e


# --------------------------------------------------------------- export

def export(ckpt: str, out: str, quantize: str = "none", group_size: Optional[int] = None,
           max_seq_len: Optional[int] = None, prefill_chunk: Optional[int] = None,
           methods: Sequence[str] = DEFAULT_METHODS, do_verify: bool = False,
           verify_tokens: int = 32, verify_prompts: int = 3,
           report_path: Optional[str] = None,
           extra_compile_args: Sequence[str] = (), kv_cache_dtype: str = "f32") -> Dict:
    t_all = time.time()
    timings = {}
    report: Dict = {"checkpoint": os.path.abspath(ckpt), "output": os.path.abspath(out),
                    "quantize": quantize, "timings_s": timings}
    methods = list(methods)
    bad = [m for m in methods if m not in DEFAULT_METHODS]
    if bad or not methods or "prefill" not in methods or len(set(methods)) != len(methods):
        raise ExportError(f"--methods must list prefill and optionally decode and "
                          f"prefill_last, each once, got {methods}")
    if quantize not in ("none", "int8", "int4"):
        raise ExportError(f"--quantize must be none, int8 or int4, got {quantize!r}")
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ExportError(f"--kv-cache-dtype must be one of {', '.join(KV_CACHE_DTYPES)}, "
                          f"got {kv_cache_dtype!r}")
    kv_name = kv_cache_dtype
    report["kv_cache_dtype"] = kv_name
    exe = kiln_bin()

    log(f"loading {ckpt}")
    t = time.time()
    try:
        model = load_model(ckpt)
    except (ValueError, OSError) as e:  # CheckpointError and ConfigError are ValueErrors
        raise ExportError(f"cannot load {ckpt}: {e}") from e
    c = model.config
    timings["load"] = time.time() - t
    S = max_seq_len or min(c.max_position_embeddings, 2048)
    if c.attention_chunk_limit is not None and S > c.attention_chunk_limit:
        raise ExportError(f"--max-seq-len {S} is larger than attention_chunk_size "
                          f"{c.attention_chunk_limit} (chunked attention is not supported)")
    if S < 2:
        raise ExportError(f"--max-seq-len must be at least 2, got {S}")
    if S > c.max_position_embeddings:
        raise ExportError(f"--max-seq-len {S} exceeds max_position_embeddings "
                          f"{c.max_position_embeddings}")
    C = prefill_chunk or min(64, S)
    if C < 1 or C > S:
        raise ExportError(f"--prefill-chunk must be in 1..{S} (max-seq-len), got {C}")
    nparams = sum(p.numel() for p in model.parameters())
    report.update(family=c.family, parameters=nparams, max_seq_len=S, prefill_chunk=C,
                  methods=methods, group_size=group_size)
    log(f"{c.family}: {nparams:,} parameters, {c.num_executed_layers} attention layers, "
        f"max_seq_len {S}, prefill chunk {C}, KV cache {kv_name}")
    kind, tok_path, add_bos = tokenizer_info(ckpt, c)

    out_dir = os.path.dirname(os.path.abspath(out)) or "."
    if not os.path.isdir(out_dir):
        raise ExportError(f"output directory {out_dir} does not exist")
    tmp = tempfile.mkdtemp(prefix="kiln-export-hf-")
    tmp_out = None
    try:
        log(f"tracing {', '.join(methods)}")
        t = time.time()
        mod = LLMExportModule(model, S, KV_CACHE_DTYPES[kv_name]).eval()
        examples = {"prefill": (torch.zeros(1, C, dtype=torch.int64),
                                torch.zeros(1, dtype=torch.int64))}
        if "decode" in methods:
            examples["decode"] = (torch.zeros(1, 1, dtype=torch.int64),
                                  torch.zeros(1, dtype=torch.int64))
        if "prefill_last" in methods:
            examples["prefill_last"] = (torch.zeros(1, C, dtype=torch.int64),
                                        torch.zeros(1, dtype=torch.int64),
                                        torch.full((1,), C - 1, dtype=torch.int64))
        pt = os.path.join(tmp, "model.pt")
        with torch.no_grad():
            traced = kiln.torchscript.save(mod, pt, None, methods=examples, check_trace=False)
            # Tracing ran the methods once: save zeroed caches (the runtime zeroes them too).
            for name, buf in traced.named_buffers():
                if "_cache_" in name:
                    buf.zero_()
            traced.save(pt, _extra_files={kiln.torchscript.INPUT_SPECS_FILE:
                                          kiln.torchscript.input_specs_json(examples)})
        del traced
        mod.reset_cache()
        timings["trace"] = time.time() - t
        del mod
        if not do_verify:  # free the weights before the compiler loads its own copy
            del model
        gc.collect()

        log(f"compiling ({'fp32' if quantize == 'none' else quantize})")
        t = time.time()
        fd, tmp_out = tempfile.mkstemp(prefix=".kiln-export-", suffix=".kiln", dir=out_dir)
        os.close(fd)
        meta = {
            "kiln.llm.family": c.family,
            "kiln.llm.max_seq_len": str(S),
            "kiln.llm.prefill_chunk": str(C),
            "kiln.llm.vocab_size": str(c.vocab_size),
            "kiln.llm.bos_token_id": "" if c.bos_token_id is None else str(c.bos_token_id),
            "kiln.llm.add_bos": "1" if add_bos else "0",
            "kiln.llm.eos_token_ids": ",".join(map(str, eos_ids(ckpt, c))),
            "kiln.tokenizer.kind": kind,
        }
        args = [exe, "compile", pt, "-o", tmp_out, "-q", "--quantize", quantize]
        if group_size is not None:
            args += ["--group-size", str(group_size)]
        for k, v in meta.items():
            args += ["--metadata", f"{k}={v}"]
        args += ["--metadata-file", f"kiln.llm.config={os.path.join(ckpt, 'config.json')}"]
        if tok_path:
            args += ["--asset", f"tokenizer={tok_path}"]
        args += list(extra_compile_args)
        _run(args, "kiln compile")
        timings["compile"] = time.time() - t

        if do_verify:
            log("verifying against eager PyTorch")
            t = time.time()
            verify(tmp_out, model, C, S, verify_tokens, quantize, methods, report,
                   verify_prompts, KV_CACHE_DTYPES[kv_name])
            timings["verify"] = time.time() - t
        os.replace(tmp_out, out)
        tmp_out = None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp_out and os.path.exists(tmp_out):
            os.unlink(tmp_out)
    report["file_bytes"] = os.path.getsize(out)
    if report_path:
        info = inspect_program(out)
        report["program"] = info  # the full `kiln inspect --json`
        report["sizes"] = {"file_bytes": info.get("file_bytes"),
                           "constant_bytes": info.get("constant_bytes"),
                           "flatbuffer_bytes": info.get("flatbuffer_bytes"),
                           "state_bytes": info.get("state_bytes")}
        methods_info = info.get("methods") or {}
        if isinstance(methods_info, dict):
            report["methods_summary"] = {
                name: {k: m.get(k) for k in ("ops", "instructions", "arena_bytes")}
                for name, m in methods_info.items() if isinstance(m, dict)}
    timings["total"] = time.time() - t_all
    log(f"wrote {out} ({report['file_bytes']:,} bytes) in {timings['total']:.1f}s")
    if report_path:
        tmp_r = report_path + ".tmp"
        with open(tmp_r, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp_r, report_path)
    return report


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # exit 1 (not argparse's 2), like every kiln command
        self.print_usage(sys.stderr)
        print(f"kiln export-hf: error: {message}", file=sys.stderr)
        sys.exit(1)


def main(argv: Optional[List[str]] = None) -> int:
    ap = _ArgumentParser(
        prog="kiln export-hf",
        description="Export a Hugging Face MobileLLM / MobileLLM-LS / MobileLLM-R1 checkpoint "
                    "directory to a Kiln program with prefill and decode methods.")
    ap.add_argument("checkpoint", metavar="CHECKPOINT_DIR")
    ap.add_argument("-o", "--output", required=True, metavar="OUT.kiln")
    ap.add_argument("--quantize", default="none", choices=["none", "int8", "int4"])
    ap.add_argument("--group-size", type=int, default=None, help="int4 group size (32, 64, 128)")
    ap.add_argument("--max-seq-len", type=int, default=None,
                    help="KV cache length S (default min(max_position_embeddings, 2048))")
    ap.add_argument("--prefill-chunk", type=int, default=None,
                    help="tokens per prefill call C (default min(64, S))")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help="methods to export: prefill (required), decode, prefill_last "
                         "(default: all three; docs/llm.md)")
    ap.add_argument("--verify", action="store_true",
                    help="check the program against eager PyTorch (exit 1 on mismatch)")
    ap.add_argument("--verify-tokens", type=int, default=32,
                    help="greedy tokens generated per sample prompt by --verify (default 32)")
    ap.add_argument("--verify-prompts", type=int, default=3,
                    help="how many sample prompts --verify generates from (1-3, default 3: "
                         "7 tokens, one prefill chunk, 1.5 chunks + 1)")
    ap.add_argument("--report", metavar="FILE.json", default=None,
                    help="write sizes, ops, arena, parity figures and timings")
    ap.add_argument("--kv-cache-dtype", default="f32", choices=list(KV_CACHE_DTYPES),
                    help="KV cache element type: f32 (default) or f16 (half the cache's "
                         "memory, k and v rounded to half; attention still computes in f32)")
    ap.add_argument("--no-fuse", action="store_true", help="passed to kiln compile")
    args = ap.parse_args(argv)

    def on_term(signum, frame):  # clean up temporary files (and kill a running compile)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    # The eager reference decodes one token at a time: tiny matmuls, where threads
    # only add synchronisation (and oversubscribe a busy machine).
    torch.set_num_threads(1)
    extra = ["--no-fuse"] if args.no_fuse else []
    try:
        export(args.checkpoint, args.output, quantize=args.quantize, group_size=args.group_size,
               max_seq_len=args.max_seq_len, prefill_chunk=args.prefill_chunk,
               methods=[m.strip() for m in args.methods.split(",") if m.strip()],
               do_verify=args.verify, verify_tokens=args.verify_tokens,
               verify_prompts=args.verify_prompts,
               report_path=args.report, extra_compile_args=extra,
               kv_cache_dtype=args.kv_cache_dtype)
    except (ExportError, ConfigError) as e:
        print(f"kiln export-hf: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("kiln export-hf: error: out of memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kiln export-hf: interrupted; no output written", file=sys.stderr)
        return 1
    except Exception as e:  # tracing/torch failures: one line, not a traceback
        print(f"kiln export-hf: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
