#!/usr/bin/env python3
"""Compare the outputs written by `kiln run` with PyTorch running the same model.

    /usr/bin/python3 examples/tiny_llama/compare.py MODEL.pt INPUT.npy OUTPUT_DIR
        [--input MORE.npy ...] [--method forward] [--tol 1e-4]

Loads the TorchScript archive with torch.jit.load, runs it on the inputs, and
compares each result with OUTPUT_DIR/output<i>.npy: relative max error
max|out - ref| / max|ref| for floating point outputs, exact equality for integer and
bool outputs. Prints one line per output and exits 1 if any output is missing, has
the wrong shape or dtype, or exceeds the tolerance.
"""
import argparse
import os
import sys

import numpy as np
import torch


def flatten_outputs(result):
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        out = []
        for r in result:
            out.extend(flatten_outputs(r))
        return out
    raise TypeError(f"unsupported output type {type(result).__name__}")


def relative_max_error(out: np.ndarray, ref: np.ndarray) -> float:
    """max|out - ref| / max|ref| in float64 (absolute error if ref is all zeros)."""
    out64 = out.astype(np.float64)
    ref64 = ref.astype(np.float64)
    if ref64.size == 0:
        return 0.0
    finite = np.isfinite(ref64)
    # Non-finite reference values (masked -inf, ...) must be reproduced exactly.
    if not np.array_equal(out64[~finite], ref64[~finite], equal_nan=True):
        return float("inf")
    if not np.all(np.isfinite(out64[finite])):
        return float("inf")
    if not finite.any():
        return 0.0
    diff = np.abs(out64[finite] - ref64[finite]).max()
    scale = np.abs(ref64[finite]).max()
    return float(diff / scale) if scale > 0 else float(diff)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the TorchScript archive given to `kiln compile`")
    parser.add_argument("input", help="the first input .npy given to `kiln run`")
    parser.add_argument("output_dir", help="the --output-dir given to `kiln run`")
    parser.add_argument("--input", dest="more_inputs", action="append", default=[],
                        help="further inputs, in order")
    parser.add_argument("--method", default="forward")
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args(argv)

    module = torch.jit.load(args.model)
    inputs = [torch.from_numpy(np.load(p)) for p in [args.input] + args.more_inputs]
    with torch.no_grad():
        refs = flatten_outputs(getattr(module, args.method)(*inputs))

    ok = True
    for i, ref_t in enumerate(refs):
        ref = ref_t.numpy()
        path = os.path.join(args.output_dir, f"output{i}.npy")
        if not os.path.exists(path):
            print(f"output{i}: MISSING ({path})")
            ok = False
            continue
        out = np.load(path)
        if out.shape != ref.shape or out.dtype != ref.dtype:
            print(f"output{i}: MISMATCH shape/dtype {out.shape} {out.dtype}, "
                  f"expected {ref.shape} {ref.dtype}")
            ok = False
            continue
        if np.issubdtype(ref.dtype, np.floating):
            err = relative_max_error(out, ref)
            good = err <= args.tol
            print(f"output{i}: shape {list(ref.shape)} {ref.dtype} max relative error "
                  f"{err:.3e} (tolerance {args.tol:g}) {'OK' if good else 'FAIL'}")
        else:
            good = np.array_equal(out, ref)
            mism = int(np.count_nonzero(out != ref))
            print(f"output{i}: shape {list(ref.shape)} {ref.dtype} exact "
                  f"{'OK' if good else f'FAIL ({mism} elements differ)'}")
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
