#!/usr/bin/env python3
"""Validation perplexity of an exported program (fp32, int8 or int4) on the demo data.

Runs the program's `prefill` method through the Kiln runtime (Python API) on every
validation fortune, scored on its own like train.py's evaluation: `<s> fortune </s>`,
windows of at most 128 inputs, every target token counted, padding excluded. Also
scores eager PyTorch on the same windows, so the two figures are comparable.

    /usr/bin/python3 examples/mobilellm/demo/prepare_data.py       # data/validation.txt
    build/bin/kiln export-hf examples/mobilellm/demo-model -o /tmp/demo-int4.kiln --quantize int4
    PYTHONPATH=build/python /usr/bin/python3 examples/mobilellm/demo/eval_program.py \
        /tmp/demo.kiln /tmp/demo-int8.kiln /tmp/demo-int4.kiln
"""
import argparse
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BOS, EOS, CTX = 1, 2, 128


def windows(docs):
    out = []
    for d in docs:
        for s in range(0, len(d) - 1, CTX):
            out.append(d[s:s + CTX + 1])
    return out


def log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def program_nll(path, wins):
    import kiln
    prog = kiln.load(path)
    chunk = int(prog.metadata["kiln.llm.prefill_chunk"])
    total, count = 0.0, 0
    for w in wins:
        inputs, targets = w[:-1], np.asarray(w[1:])
        prog.reset_state()
        rows = []
        for start in range(0, len(inputs), chunk):
            part = inputs[start:start + chunk]
            tokens = np.zeros((1, chunk), np.int64)
            tokens[0, :len(part)] = part  # padded tail: never read by the real queries
            (logits,) = prog.run("prefill", [tokens, np.array([start], np.int64)])
            rows.append(logits[0, :len(part)])
        lp = log_softmax(np.concatenate(rows).astype(np.float64))
        total -= float(lp[np.arange(len(targets)), targets].sum())
        count += len(targets)
    return total / count, count


def eager_nll(checkpoint, wins):
    import torch
    import torch.nn.functional as F
    from kiln.models import load_model
    model = load_model(checkpoint).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for w in wins:
            x = torch.tensor(w, dtype=torch.int64).view(1, -1)
            logits = model(x[:, :-1])
            total += float(F.cross_entropy(logits[0], x[0, 1:], reduction="sum"))
            count += len(w) - 1
    return total / count, count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("programs", nargs="+", metavar="PROGRAM.kiln")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--checkpoint", default=os.path.join(HERE, "..", "demo-model"))
    ap.add_argument("--docs", type=int, default=0, help="first N validation fortunes (0: all)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "python"))
    import sentencepiece as spm
    val = os.path.join(args.data, "validation.txt")
    if not os.path.isfile(val):
        sys.exit(f"error: {val} not found; run examples/mobilellm/demo/prepare_data.py first")
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.checkpoint, "tokenizer.model"))
    with open(val, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if args.docs:
        lines = lines[:args.docs]
    wins = windows([[BOS] + ids + [EOS] for ids in sp.encode(lines)])
    nll, n = eager_nll(args.checkpoint, wins)
    print(f"{'eager PyTorch (fp32)':40s} perplexity {math.exp(nll):8.3f}  ({n} tokens, {len(lines)} fortunes)")
    for p in args.programs:
        nll, n = program_nll(p, wins)
        print(f"{os.path.basename(p):40s} perplexity {math.exp(nll):8.3f}  "
              f"({os.path.getsize(p):,} bytes)", flush=True)


if __name__ == "__main__":
    main()
