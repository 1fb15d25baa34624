#!/usr/bin/env python3
"""Train the Kiln demo model: a small MobileLLM-shaped model on the `fortunes` package.

Inputs (made by prepare_data.py and train_tokenizer.py, not committed):
    DATA/train.txt, DATA/validation.txt   one fortune per line
    DATA/tokenizer.model                  our sentencepiece tokenizer
Output, in the Hugging Face layout (examples/mobilellm/demo-model/ by default):
    config.json               MobileLLM style (model_type mobilellm, share_embedding)
    model.safetensors         float16, tied embeddings (no lm_head.weight)
    tokenizer.model, tokenizer_config.json, special_tokens_map.json, generation_config.json
    training_log.json         data version, steps, tokens seen, wall time, perplexities
    README.md                 figures and sample continuations

The model is python/kiln/models/mobilellm.py (MobileLLMForCausalLM), trained in float32
on CPU. Each training document is <s> fortune </s>; an epoch shuffles the fortunes
(seeded), concatenates them and cuts the stream into windows of --ctx tokens (plus the
next token as the last target). AdamW, linear warmup then cosine decay, gradient
clipping at 1. Everything is seeded: on the same machine the same inputs give the same
weights.

The final validation perplexity is computed on the float16 weights read back from
model.safetensors (in float32): every validation fortune is scored on its own as
<s> fortune </s> (the targets are the fortune's tokens and </s>; long fortunes in
windows of --ctx tokens), padding excluded.

    /usr/bin/python3 examples/mobilellm/demo/train.py                 # full run
    /usr/bin/python3 examples/mobilellm/demo/train.py --steps 40 --out /tmp/m   # trial
    /usr/bin/python3 examples/mobilellm/demo/train.py --finalize-only  # re-evaluate and
                                                    # rewrite README/log of a saved model
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time

# OpenBLAS (Debian's torch calls it for matmuls) keeps its own thread pool, on top of
# torch's; on a busy machine spinning pools waste most of the CPU time. One pool only.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))

from kiln.checkpoint import write_safetensors  # noqa: E402
from kiln.models.mobilellm import (  # noqa: E402
    MobileLLMConfig, MobileLLMForCausalLM, load_model, mobilellm_config)

BOS, EOS = 1, 2
PROMPTS = [
    "The meaning of life is",
    "A computer is",
    "Never trust a man who",
    "Love is",
    "The best way to learn programming is",
]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--tokenizer", default=None, help="default: DATA/tokenizer.model")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "demo-model"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 was fastest on a shared 2-core machine)")
    # shape
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--ffn", type=int, default=352)
    ap.add_argument("--max-position", type=int, default=512)
    # optimisation
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None,
                    help="total optimizer steps (the cosine schedule ends there); without it, "
                         "--time-budget picks the number at the end of warmup")
    ap.add_argument("--time-budget", type=float, default=30.0,
                    help="minutes of training to aim for when --steps is not given: the "
                         "step count is fixed at the end of warmup from the measured speed "
                         "(warmup does not depend on it, so rerunning with --steps N as "
                         "recorded in training_log.json reproduces the run)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=0, help="default: steps / 4")
    ap.add_argument("--eval-docs", type=int, default=200,
                    help="validation fortunes scored during training (all of them at the end)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--finalize-only", action="store_true",
                    help="skip training; evaluate the saved model in --out, sample, rewrite "
                         "README.md and the figures in training_log.json")
    args = ap.parse_args(argv)
    if args.tokenizer is None:
        args.tokenizer = os.path.join(args.data, "tokenizer.model")
    args.out = os.path.abspath(args.out)
    return args


# ---------------------------------------------------------------------- data

def load_split(sp, data_dir, split):
    path = os.path.join(data_dir, f"{split}.txt")
    if not os.path.isfile(path):
        sys.exit(f"error: {path} not found; run prepare_data.py and train_tokenizer.py first")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    return [[BOS] + ids + [EOS] for ids in sp.encode(lines)], sum(len(l.encode()) + 1 for l in lines)


def epoch_windows(docs, ctx, gen):
    """One epoch: shuffled documents, concatenated, cut into [n, ctx + 1] windows."""
    order = torch.randperm(len(docs), generator=gen).tolist()
    stream = torch.tensor([t for i in order for t in docs[i]], dtype=torch.int64)
    n = (stream.numel() - 1) // ctx
    idx = torch.arange(n).view(n, 1) * ctx + torch.arange(ctx + 1).view(1, ctx + 1)
    return stream[idx]


def batches(docs, ctx, batch, gen):
    """Endless (epoch, [batch, ctx + 1]) iterator; the window order is shuffled per epoch."""
    epoch = 0
    while True:
        w = epoch_windows(docs, ctx, gen)
        w = w[torch.randperm(w.shape[0], generator=gen)]
        for i in range(0, w.shape[0] - batch + 1, batch):
            yield epoch, w[i:i + batch]
        epoch += 1


def eval_windows(docs, ctx):
    """Each document on its own: windows of at most ctx inputs (+1 target) overlapping by 1."""
    out = []
    for d in docs:
        for s in range(0, len(d) - 1, ctx):
            out.append(d[s:s + ctx + 1])
    return out


@torch.no_grad()
def evaluate(model, windows, batch=32):
    """Mean NLL (nats) per target token and the token count; padding excluded."""
    model.eval()
    windows = sorted(windows, key=len)
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        chunk = windows[i:i + batch]
        n = max(len(w) for w in chunk)
        x = torch.zeros(len(chunk), n, dtype=torch.int64)
        mask = torch.zeros(len(chunk), n, dtype=torch.bool)
        for j, w in enumerate(chunk):
            x[j, :len(w)] = torch.tensor(w)
            mask[j, :len(w)] = True
        logits = model(x[:, :-1])
        tgt = x[:, 1:].masked_fill(~mask[:, 1:], -100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                               ignore_index=-100, reduction="sum")
        total += float(loss)
        count += int(mask[:, 1:].sum())
    model.train()
    return total / count, count


# --------------------------------------------------------------------- model

def make_config(args, vocab):
    """The published MobileLLM config.json layout, at the demo's sizes (float16 weights)."""
    config = mobilellm_config(args.layers, args.hidden, args.ffn, args.heads, args.kv_heads,
                              "float16")
    config.update(bos_token_id=BOS, eos_token_id=EOS, head_dim=args.head_dim,
                  max_position_embeddings=args.max_position, vocab_size=vocab)
    return config


@torch.no_grad()
def init_weights(model, layers, gen):
    """N(0, 0.02) matrices, residual output projections scaled by 1/sqrt(2 layers), norms 1."""
    for name, p in sorted(model.named_parameters()):
        if p.dim() == 1:
            p.fill_(1.0)
        else:
            std = 0.02
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                std /= math.sqrt(2 * layers)
            p.normal_(0.0, std, generator=gen)


def make_optimizer(model, args):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8, foreach=True)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    assert args.steps is not None
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    lo = args.lr * args.min_lr_ratio
    return lo + 0.5 * (args.lr - lo) * (1 + math.cos(math.pi * min(1.0, t)))


# -------------------------------------------------------------------- saving

def save_hf(model, config, tokenizer_path, out):
    """config.json, float16 model.safetensors, tokenizer files; written to a temporary
    directory first and moved into place, so a failure never leaves a partial model."""
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    state = {n: p.detach().to(torch.float16) for n, p in model.state_dict().items()}
    assert "lm_head.weight" not in state
    write_safetensors(os.path.join(tmp, "model.safetensors"), state, metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copyfile(tokenizer_path, os.path.join(tmp, "tokenizer.model"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    tok_cfg = dict(special, tokenizer_class="LlamaTokenizer", add_bos_token=True,
                   add_eos_token=False, legacy=False,
                   model_max_length=config["max_position_embeddings"])
    for name, obj in (("special_tokens_map.json", special), ("tokenizer_config.json", tok_cfg),
                      ("generation_config.json", {"bos_token_id": BOS, "eos_token_id": EOS})):
        with open(os.path.join(tmp, name), "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
    if os.path.isdir(out):
        for name in os.listdir(out):  # keep files we do not write (none expected)
            if not os.path.exists(os.path.join(tmp, name)) and name not in (
                    "training_log.json", "README.md"):
                shutil.copy2(os.path.join(out, name), os.path.join(tmp, name))
        shutil.rmtree(out)
    os.replace(tmp, out)


# ------------------------------------------------------------------ sampling

@torch.no_grad()
def sample(model, sp, prompt, n, temperature=0.0, top_p=1.0, seed=0):
    """Eager generation with the model's KV cache; stops at </s>. Returns the new text."""
    ids = [BOS] + sp.encode(prompt)
    gen = torch.Generator().manual_seed(seed)
    logits, past = model.forward_cached(torch.tensor([ids]))
    out = []
    for _ in range(n):
        last = logits[0, -1]
        if temperature == 0.0:
            tok = int(torch.argmax(last))
        else:
            probs = torch.softmax(last / temperature, dim=-1)
            sp_, si = torch.sort(probs, descending=True)
            keep = (torch.cumsum(sp_, 0) - sp_) < top_p
            sp_ = sp_ * keep
            tok = int(si[torch.multinomial(sp_ / sp_.sum(), 1, generator=gen)])
        if tok == EOS:
            break
        out.append(tok)
        logits, past = model.forward_cached(torch.tensor([[tok]]), past)
    return sp.decode(ids[1:] + out)[len(sp.decode(ids[1:])):], len(out)


def finalize(args, sp, val_docs, val_bytes, log):
    """Reload the saved float16 model in float32, evaluate, sample, write log + README."""
    model = load_model(args.out).eval()
    nll, count = evaluate(model, eval_windows(val_docs, args.ctx))
    ppl = math.exp(nll)
    log["final_validation"] = {
        "weights": "model.safetensors (float16) loaded in float32",
        "nll_per_token": round(nll, 5), "perplexity": round(ppl, 3),
        "target_tokens": count, "bytes": val_bytes,
        "bits_per_byte": round(nll * count / math.log(2) / val_bytes, 4)}
    samples = []
    for i, p in enumerate(PROMPTS):
        g, ng = sample(model, sp, p, 48)
        t, nt = sample(model, sp, p, 48, temperature=0.8, top_p=0.9, seed=i)
        samples.append({"prompt": p, "greedy": g, "greedy_tokens": ng,
                        "temperature_0.8_top_p_0.9_seed_%d" % i: t, "sampled_tokens": nt})
    log["samples"] = samples
    for name in ("model.safetensors", "tokenizer.model"):
        with open(os.path.join(args.out, name), "rb") as f:
            log.setdefault("sha256", {})[name] = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(args.out, "training_log.json"), "w") as f:
        json.dump(log, f, indent=1)
        f.write("\n")
    write_readme(args.out, log)
    print(f"final: validation perplexity {ppl:.3f} ({nll:.4f} nats/token over {count} tokens, "
          f"{log['final_validation']['bits_per_byte']} bits/byte) from the float16 weights")
    for s in samples:
        k = [x for x in s if x.startswith("temperature")][0]
        print(f"  {s['prompt']!r}\n    greedy: {s['greedy']!r}\n    sampled: {s[k]!r}")


def _threads(log):
    n = log["train"]["threads"]
    return "one CPU thread" if n == 1 else f"{n} CPU threads"


def write_readme(out, log):
    c = log["config"]
    fv = log["final_validation"]
    d = log["data"]
    lines = [
        "# Kiln demo model: a tiny MobileLLM trained on Debian's `fortunes`",
        "",
        "A MobileLLM-shaped model (deep and thin, grouped-query attention, SwiGLU, embeddings",
        "shared with the output) trained from scratch by",
        "[`examples/mobilellm/demo/train.py`](../demo/train.py) on "
        f"{_threads(log)}, with its own",
        "SentencePiece tokenizer. It writes short English sentences in the style of",
        "fortune cookies (often ending in a made-up attribution, `-- B. B. Shaw`), with the",
        "grammar and repetitions you expect from a model this small trained for minutes.",
        "It is the default model of the README's main command.",
        "",
        "| | |",
        "|---|---|",
        f"| parameters | {log['parameters']:,} (tied embeddings) |",
        f"| shape | {c['num_hidden_layers']} layers, hidden {c['hidden_size']}, "
        f"{c['num_attention_heads']} heads / {c['num_key_value_heads']} kv heads of "
        f"{c['head_dim']}, SwiGLU {c['intermediate_size']} |",
        f"| vocabulary | {c['vocab_size']} (SentencePiece BPE, byte fallback; unk 0, <s> 1, </s> 2) |",
        f"| context | trained on windows of {log['train']['ctx']} tokens (positions beyond "
        f"that are untrained; fortunes are short and end with </s>); "
        f"max_position_embeddings {c['max_position_embeddings']} |",
        f"| weights | `model.safetensors`, float16 ({log['files']['model.safetensors']:,} bytes) |",
        f"| data | Debian `fortunes` {d['packages'].get('fortunes')} (+ `fortunes-min`), "
        f"{d['train_fortunes']:,} training fortunes ({d['train_tokens']:,} tokens), "
        f"{d['validation_fortunes']:,} validation fortunes |",
        f"| training | {log['train']['steps']:,} steps x {log['train']['batch']} x "
        f"{log['train']['ctx']} = {log['train']['tokens_seen']:,} tokens "
        f"({log['train']['epochs']:.1f} epochs), {log['train']['wall_seconds'] / 60:.1f} min on "
        f"{_threads(log)} of a shared 2-core machine |",
        f"| validation perplexity | **{fv['perplexity']:.2f}** ({fv['nll_per_token']:.4f} "
        f"nats/token, {fv['bits_per_byte']} bits/byte; float16 weights, {fv['target_tokens']:,} "
        f"tokens) |",
        "",
        "Reproduce (about half an hour): see "
        "[`examples/mobilellm/demo/README.md`](../demo/README.md).",
        "",
        "## Samples (eager PyTorch, float32 from the float16 weights, <s> + prompt, "
        "at most 48 new tokens, stop at </s>)",
        "",
    ]
    for s in log["samples"]:
        k = [x for x in s if x.startswith("temperature")][0]
        lines += [f"- **{s['prompt']}**",
                  f"  - greedy: {s['prompt']}{s['greedy']}",
                  f"  - {k.replace('_', ' ').replace('temperature 0.8 top p 0.9', 'temperature 0.8, top-p 0.9,')}: "
                  f"{s['prompt']}{s[k]}"]
    lines += ["",
              "Files: `config.json` (MobileLLM layout: `model_type` mobilellm, `share_embedding` "
              "true, so there is no `lm_head.weight`), `model.safetensors`, `tokenizer.model`, "
              "`tokenizer_config.json`, `special_tokens_map.json`, `generation_config.json`, "
              "`training_log.json` (every figure above, the loss curve and the data checksums).",
              ""]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # tiny Adam moments would otherwise slow every step down
    import sentencepiece as spm
    if not os.path.isfile(args.tokenizer):
        sys.exit(f"error: {args.tokenizer} not found; run train_tokenizer.py first")
    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    if (sp.unk_id(), sp.bos_id(), sp.eos_id()) != (0, BOS, EOS):
        sys.exit(f"error: {args.tokenizer}: expected unk 0, bos 1, eos 2")
    train_docs, train_bytes = load_split(sp, args.data, "train")
    val_docs, val_bytes = load_split(sp, args.data, "validation")
    train_tokens = sum(len(d) for d in train_docs)

    if args.finalize_only:
        with open(os.path.join(args.out, "training_log.json")) as f:
            log = json.load(f)
        args.ctx = log["train"]["ctx"]
        finalize(args, sp, val_docs, val_bytes, log)
        return

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    config = make_config(args, sp.get_piece_size())
    model = MobileLLMForCausalLM(MobileLLMConfig.from_dict(config))
    init_weights(model, args.layers, gen)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = make_optimizer(model, args)
    val_windows = eval_windows(val_docs[:args.eval_docs], args.ctx)
    print(f"model: {n_params:,} parameters ({args.layers} layers, hidden {args.hidden}, "
          f"{args.heads}/{args.kv_heads} heads x {args.head_dim}, ffn {args.ffn}, vocab "
          f"{config['vocab_size']}); train {train_tokens:,} tokens, validation "
          f"{sum(len(d) for d in val_docs):,} tokens; "
          f"{args.steps if args.steps else 'time-budgeted'} steps x {args.batch} x {args.ctx}",
          flush=True)

    data_info_path = os.path.join(args.data, "data_info.json")
    data_info = json.load(open(data_info_path)) if os.path.isfile(data_info_path) else {}
    history = []
    it = batches(train_docs, args.ctx, args.batch, gen)
    t0 = t_start = time.time()
    tokens_seen = 0
    epoch = 0
    loss_acc, loss_n = 0.0, 0
    steps_given = args.steps is not None
    step = 0
    while args.steps is None or step < args.steps:
        if args.steps is None and step == args.warmup:
            per_step = (time.time() - t0) / step
            args.steps = max(args.warmup + 1, int(args.time_budget * 60 / per_step))
            print(f"time budget {args.time_budget} min at {per_step:.2f} s/step -> "
                  f"{args.steps} steps", flush=True)
        epoch, xb = next(it)
        lr = lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(xb[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        opt.step()
        tokens_seen += xb.shape[0] * (xb.shape[1] - 1)
        loss_acc += float(loss)
        loss_n += 1
        step += 1
        done = step
        total = args.steps if args.steps else args.warmup
        if args.steps and not args.eval_every:
            args.eval_every = max(1, args.steps // 4)
        if done % args.log_every == 0 or done == args.steps:
            el = time.time() - t0
            tps = tokens_seen / el
            eta = el / done * (total - done)
            print(f"step {done:5d}/{total} epoch {epoch} loss {loss_acc / loss_n:.4f} "
                  f"lr {lr:.2e} gnorm {gnorm:.2f} {tps:,.0f} tok/s elapsed {el / 60:.1f} min "
                  f"ETA {eta / 60:.1f} min", flush=True)
            history.append({"step": done, "train_loss": round(loss_acc / loss_n, 5),
                            "lr": lr, "elapsed_s": round(el, 1)})
            loss_acc, loss_n = 0.0, 0
        if args.steps and (done % args.eval_every == 0 or done == args.steps):
            te = time.time()
            nll, _ = evaluate(model, val_windows)
            print(f"  validation ({args.eval_docs} fortunes): loss {nll:.4f} perplexity {math.exp(nll):.3f} "
                  f"({time.time() - te:.1f} s)", flush=True)
            history.append({"step": done, "validation_fortunes": args.eval_docs,
                            "validation_loss": round(nll, 5),
                            "validation_perplexity": round(math.exp(nll), 3)})
            t0 += time.time() - te  # throughput/ETA count training time only
    wall = time.time() - t0
    wall_total = time.time() - t_start

    model.eval()
    save_hf(model, config, args.tokenizer, args.out)
    files = {n: os.path.getsize(os.path.join(args.out, n)) for n in sorted(os.listdir(args.out))}
    log = {
        "config": config,
        "parameters": n_params,
        "data": {"source": "Debian package fortunes (/usr/share/games/fortunes, see "
                           "examples/mobilellm/demo/prepare_data.py)",
                 "packages": data_info.get("packages", {}),
                 "splits": data_info.get("splits", {}),
                 "train_fortunes": len(train_docs), "validation_fortunes": len(val_docs),
                 "train_tokens": train_tokens, "train_bytes": train_bytes,
                 "validation_bytes": val_bytes},
        "train": {"seed": args.seed, "steps": args.steps,
                  "steps_from_time_budget": None if steps_given else args.time_budget, "batch": args.batch, "ctx": args.ctx,
                  "tokens_seen": tokens_seen, "epochs": tokens_seen / train_tokens,
                  "lr": args.lr, "min_lr_ratio": args.min_lr_ratio, "warmup": args.warmup,
                  "weight_decay": args.weight_decay, "optimizer": "AdamW(0.9, 0.95), clip 1.0",
                  "schedule": "linear warmup, cosine decay", "threads": args.threads,
                  "wall_seconds": round(wall, 1),
                  "wall_seconds_note": "training steps only (validation passes excluded)",
                  "wall_seconds_with_validation": round(wall_total, 1),
                  "torch": torch.__version__},
        "files": files,
        "history": history,
    }
    print(f"saved {args.out}: {files}; {tokens_seen:,} tokens in {wall / 60:.1f} min", flush=True)
    finalize(args, sp, val_docs, val_bytes, log)


if __name__ == "__main__":
    main()
