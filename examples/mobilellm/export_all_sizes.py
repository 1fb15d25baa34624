#!/usr/bin/python3
"""Export every published MobileLLM configuration from a seeded random checkpoint and
time a few decode steps.

    /usr/bin/python3 examples/mobilellm/export_all_sizes.py [--only 125M,R1-140M]
        [--max-seq-len 64] [--quantize none] [--decode-tokens 16] [--work DIR] [--keep]

For each configuration (../shared/MOBILELLM.md): writes the checkpoint in its
published layout and dtype (kiln.models.testing; 1B and larger sharded in two
safetensors files), runs `kiln export-hf` (fp32 compute), then `kiln generate` on a
4-token prompt with 1 + N new tokens; decode ms/token comes from the decode speed
it reports (tokens/s over the N decode steps). Prints a table.
Needs the `kiln` binary (KILN_BIN, or <repo>/build/bin/kiln). Large sizes take
minutes and several GB of memory and disk each; files are deleted after each size
unless --keep.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))

from kiln.models import CONFIG_NAMES, PUBLISHED_PARAMS, build_config  # noqa: E402
from kiln.models.testing import write_random_checkpoint  # noqa: E402


def run(args, what):
    t = time.time()
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc, time.time() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(CONFIG_NAMES),
                    help=f"comma-separated subset of {','.join(CONFIG_NAMES)}")
    ap.add_argument("--max-seq-len", type=int, default=64)
    ap.add_argument("--prefill-chunk", type=int, default=None)
    ap.add_argument("--quantize", default="none", choices=["none", "int8", "int4"])
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep checkpoints and programs")
    args = ap.parse_args()
    kiln = os.environ.get("KILN_BIN") or os.path.join(REPO, "build", "bin", "kiln")
    if not os.path.isfile(kiln):
        sys.exit(f"error: {kiln} not found (build it or set KILN_BIN)")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    bad = [n for n in names if n not in CONFIG_NAMES]
    if bad:
        sys.exit(f"error: unknown configuration(s) {bad} (known: {CONFIG_NAMES})")
    work = args.work or tempfile.mkdtemp(prefix="kiln-all-sizes-")
    os.makedirs(work, exist_ok=True)
    rows = []
    header = (f"{'config':<9} {'params':>14} {'ckpt write s':>12} {'export s':>9} "
              f"{'file MB':>9} {'decode ms/tok':>13}")
    print(header, flush=True)
    for name in names:
        ckpt = os.path.join(work, name)
        out = os.path.join(work, name + ".kiln")
        cfg = build_config(name)
        t = time.time()
        shards = 2 if PUBLISHED_PARAMS[name] >= 900_000_000 else 1
        write_random_checkpoint(ckpt, cfg, seed=0, shards=shards)
        t_write = time.time() - t
        try:
            cmd = [kiln, "export-hf", ckpt, "-o", out, "--max-seq-len",
                   str(args.max_seq_len), "--quantize", args.quantize]
            if args.prefill_chunk:
                cmd += ["--prefill-chunk", str(args.prefill_chunk)]
            _, t_export = run(cmd, f"export {name}")
            prompt = "1,2,3,4"
            base = [kiln, "generate", out, "--prompt-tokens", prompt, "--print-token-ids",
                    "--ignore-eos"]
            p2, _ = run(base + ["-n", str(1 + args.decode_tokens)], f"generate {name}")
            # `kiln generate` reports "decode: X tokens/s" on stderr.
            m = re.search(r"decode: ([0-9.]+) tokens/s", p2.stderr)
            if not m or float(m.group(1)) <= 0:
                raise RuntimeError(f"no decode speed in kiln generate's output:\n{p2.stderr}")
            ms = 1000.0 / float(m.group(1))
            size = os.path.getsize(out) / 1e6
            row = (f"{name:<9} {PUBLISHED_PARAMS[name]:>14,} {t_write:>12.1f} {t_export:>9.1f} "
                   f"{size:>9.1f} {ms:>13.1f}")
        except RuntimeError as e:
            row = f"{name:<9} {PUBLISHED_PARAMS[name]:>14,} {t_write:>12.1f} FAILED: {e}"
        print(row, flush=True)
        rows.append(row)
        if not args.keep:
            shutil.rmtree(ckpt, ignore_errors=True)
            if os.path.exists(out):
                os.unlink(out)
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all("FAILED" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
