"""Kernel threads and kernel choice (docs/runtime-threads.md): `--threads N` and
`--kernels portable|optimized` on `kiln run` / `kiln generate`, and
kiln.load(threads=, kernels=).

Kernels split work by output elements, each computed by one thread in the same
order as on one thread, so token ids must be identical for every thread count;
greedy tokens are also checked against eager PyTorch (test_generate.check_greedy).
"""
import os

import numpy as np
import pytest
import torch

import harness
from test_generate import Llm, check_greedy, generate, ids_of, prompt_of


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    return Llm(str(tmp_path_factory.mktemp("threads")), "bare", 11, False)


def test_thread_counts_give_identical_tokens(llm):
    prompt = prompt_of(19, seed=4)  # three prefill chunks, then decode
    base = ["--prompt-tokens", ",".join(map(str, prompt)), "-n", 40, "--ignore-eos",
            "--print-token-ids"]
    greedy = {t: ids_of(generate(llm.out, base + ["--threads", t])) for t in (1, 2, 3)}
    assert greedy[1] == greedy[2] == greedy[3], f"greedy tokens differ by thread count: {greedy}"
    check_greedy(llm.model, prompt, greedy[1], "--threads 1")
    sampled = [ids_of(generate(llm.out, base + ["--threads", t, "--temperature", "0.9",
                                                "--seed", 5])) for t in (1, 2)]
    assert sampled[0] == sampled[1], f"sampled tokens differ between 1 and 2 threads: {sampled}"


def test_portable_kernels(llm):
    prompt = prompt_of(8, seed=2)
    args = ["--prompt-tokens", ",".join(map(str, prompt)), "-n", 16, "--ignore-eos",
            "--print-token-ids"]
    proc = generate(llm.out, args + ["--kernels", "portable", "--threads", "2"])
    assert "threads: 2, kernels: portable" in proc.stderr, harness.describe(proc)
    check_greedy(llm.model, prompt, ids_of(proc), "--kernels portable")
    one = generate(llm.out, args + ["--kernels", "portable", "--threads", "1"])
    assert ids_of(one) == ids_of(proc), "portable kernels: 1 and 2 threads differ"
    opt = generate(llm.out, args + ["--kernels", "optimized"])
    assert "kernels: optimized" in opt.stderr, harness.describe(opt)


BAD = [
    (["--threads", "0"], "--threads must be a whole number from 1 to 256, got '0'"),
    (["--threads", "abc"], "--threads must be a whole number from 1 to 256, got 'abc'"),
    (["--threads", "-1"], "got '-1'"),
    (["--threads", "257"], "got '257'"),
    (["--threads", "2.5"], "got '2.5'"),
    (["--threads"], "--threads needs a number of threads"),
    (["--kernels", "foo"], "--kernels must be 'portable' or 'optimized', got 'foo'"),
    (["--kernels"], "--kernels needs 'portable' or 'optimized'"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_values_generate(llm, args, message):
    proc = generate(llm.out, ["--prompt-tokens", "1,2"] + args, ok=False)
    assert proc.returncode == 1 and message in proc.stderr, harness.describe(proc)
    assert proc.stdout == "", harness.describe(proc)


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    d = tmp_path_factory.mktemp("threads_linear")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(96, 160), torch.nn.GELU(),
                                torch.nn.Linear(160, 48)).eval()
    x = np.random.default_rng(0).standard_normal((4, 96)).astype(np.float32)
    pt = str(d / "mlp.pt")
    harness.trace(model, [x]).save(pt)
    out = str(d / "mlp.kiln")
    harness.compile_ok("mlp", pt, out)
    return out, x, harness.eager(model, [x])[0]


@pytest.mark.parametrize("tool", ["kiln", "kiln-runtime"])
@pytest.mark.parametrize("args,message", BAD)
def test_bad_values_run(linear, tmp_path, tool, args, message):
    program, x, _ = linear
    (inp,) = harness.write_inputs(str(tmp_path), [x])
    out_dir = tmp_path / "out"
    proc = harness.run_tool([harness.binary(tool), "run", program, "--input", inp,
                             "--output-dir", str(out_dir)] + args)
    assert proc.returncode == 1 and message in proc.stderr, harness.describe(proc)
    assert not out_dir.exists() or not os.listdir(out_dir), "output written despite the error"


def test_run_threads_and_kernels(linear, tmp_path):
    program, x, ref = linear
    (inp,) = harness.write_inputs(str(tmp_path), [x])
    outs = {}
    for args in (["--threads", "1"], ["--threads", "2"], ["--threads", "2", "--kernels", "portable"]):
        out_dir = tmp_path / "_".join(args).replace("-", "")
        proc = harness.run_tool([harness.binary("kiln"), "run", program, "--input", inp,
                                 "--output-dir", str(out_dir)] + args)
        assert proc.returncode == 0, harness.describe(proc)
        got = np.load(out_dir / "output0.npy")
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5,
                                   err_msg=f"mlp [4,96]->[4,48] with {args} vs eager")
        outs[" ".join(args)] = got
    assert "--threads" in harness.run_tool([harness.binary("kiln"), "run", "--help"]).stdout


def test_python_load_threads(llm):
    import kiln
    prompt = prompt_of(12, seed=6)
    tokens = {}
    for threads in (1, 2):
        prog = kiln.load(llm.out, threads=threads)
        assert prog.num_threads == threads
        tokens[threads] = prog.generate(prompt_tokens=prompt, max_new_tokens=20,
                                        ignore_eos=True).tokens
    assert tokens[1] == tokens[2], f"kiln.load(threads=1) and (threads=2) differ: {tokens}"
    check_greedy(llm.model, prompt, tokens[1], "kiln.load(threads=2)")
    assert kiln.load(llm.out).num_threads >= 1
    portable = kiln.load(llm.out, threads=2, kernels="portable")
    check_greedy(llm.model, prompt, portable.generate(prompt_tokens=prompt, max_new_tokens=20,
                                                      ignore_eos=True).tokens,
                 "kiln.load(kernels='portable')")
    for bad in (0, -1, 257, 2.0, "2", True):
        with pytest.raises(ValueError, match="threads must be an int from 1 to 256"):
            kiln.load(llm.out, threads=bad)
    with pytest.raises(ValueError, match="kernels must be 'optimized' or 'portable'"):
        kiln.load(llm.out, kernels="fast")


def test_generate_profile(llm):
    """--profile: per-method tables of time by op and the slowest instructions, on stderr;
    the generated ids are the same as without it."""
    prompt = prompt_of(9, seed=3)
    args = ["--prompt-tokens", ",".join(map(str, prompt)), "-n", 6, "--ignore-eos",
            "--print-token-ids"]
    plain = generate(llm.out, args)
    proc = generate(llm.out, args + ["--profile"])
    assert ids_of(proc) == ids_of(plain), "--profile changed the generated ids"
    # 9 prompt tokens, chunk 8: prefill [0, 8) without logits, prefill_last [1, 9) whose
    # logits give the first new token, then decode for new tokens 1..5 (docs/llm.md §3).
    for method, runs in (("prefill", 1), ("prefill_last", 1), ("decode", 5)):
        assert f"profile of method {method}: {runs} runs, " in proc.stderr, \
            harness.describe(proc)
    decode = proc.stderr.split("profile of method decode: ")[1]
    assert "slowest instructions:" in decode and "linear" in decode, harness.describe(proc)
    assert "profile of method" not in plain.stderr


def test_run_profile(linear, tmp_path):
    program, x, ref = linear
    (inp,) = harness.write_inputs(str(tmp_path), [x])
    proc = harness.run_tool([harness.binary("kiln-runtime"), "run", program, "--input", inp,
                             "--output-dir", str(tmp_path / "o"), "--profile"])
    assert proc.returncode == 0, harness.describe(proc)
    assert "profile of method forward: 1 runs" in proc.stderr, harness.describe(proc)
    np.testing.assert_allclose(np.load(tmp_path / "o" / "output0.npy"), ref, rtol=1e-4, atol=1e-5)
