"""`kiln generate` and Program.generate (docs/llm.md §3) on small exported LLMs.

The programs come from `kiln export-hf` on seeded random MobileLLM checkpoints
(2 layers, hidden 64, vocabulary 512) whose weights are scaled up so greedy
decoding moves between many tokens instead of repeating one. The export uses
S = --max-seq-len 64 and C = --prefill-chunk 8, so prompts of 5, 8, 16 and 19
tokens take the padded, exact, several-chunk and overlapping-chunk prefill paths.

References are independent of Kiln: the eager model's own KV-cache generation
(`generate_greedy`, which also gives the top-1/top-2 margin of each step), and the
sentencepiece Python module for text.
"""
import os
import re
import sys

import numpy as np
import pytest
import torch

import harness

sys.path.insert(0, os.path.join(harness.BUILD_DIR, "python"))

from kiln.models import init_random, load_model, tiny_config  # noqa: E402
from kiln.models.testing import write_checkpoint  # noqa: E402

S, C, V = 64, 8, 512
TIE = 1e-4  # eager top-2 margin below which a greedy step is a tie
CORPUS = os.path.join(harness.SOURCE_DIR, "tests", "data", "tokenizers", "corpus.txt")


def make_checkpoint(path, seed, with_tokenizer):
    config = tiny_config("mobilellm", vocab_size=V)
    model = init_random(config, seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:  # embeddings and projections: peaked, varied logits
                p.mul_(10.0)
    write_checkpoint(path, config, model.state_dict())
    if with_tokenizer:
        import sentencepiece as spm
        # ASCII text: the 256 byte pieces + ~90 characters leave room for merges.
        with open(CORPUS, encoding="utf-8") as f:
            text = "".join(ch for ch in f.read() if ord(ch) < 128)
        corpus = os.path.join(path, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(text)
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(path, "tokenizer"), vocab_size=V,
            model_type="bpe", byte_fallback=True, character_coverage=1.0,
            bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2)
        os.remove(os.path.join(path, "tokenizer.vocab"))
        os.remove(corpus)
    return path


class Llm:
    def __init__(self, root, name, seed, with_tokenizer):
        ckpt = make_checkpoint(os.path.join(root, name), seed, with_tokenizer)
        self.ckpt = ckpt
        self.out = os.path.join(root, f"{name}.kiln")
        proc = harness.run_tool([harness.binary("kiln"), "export-hf", ckpt, "-o", self.out,
                                 "--max-seq-len", S, "--prefill-chunk", C], timeout=300)
        assert proc.returncode == 0, harness.describe(proc)
        self.model = load_model(ckpt).eval()
        self.sp = None
        if with_tokenizer:
            import sentencepiece as spm
            self.sp = spm.SentencePieceProcessor(model_file=os.path.join(ckpt, "tokenizer.model"))


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    return Llm(str(tmp_path_factory.mktemp("generate")), "spm", 7, True)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    return Llm(str(tmp_path_factory.mktemp("generate_bare")), "bare", 11, False)


def generate(program, args, ok=True):
    proc = harness.run_tool([harness.binary("kiln"), "generate", program] + [str(a) for a in args])
    if ok:
        assert proc.returncode == 0, harness.describe(proc)
    return proc


def ids_of(proc):
    line = proc.stdout
    assert re.fullmatch(r"\d+( \d+)*\n", line), f"--print-token-ids output {line!r}"
    return [int(t) for t in line.split()]


def prompt_of(n, seed=0):
    g = np.random.default_rng(seed)
    return [1] + [int(t) for t in g.integers(3, V, size=n - 1)]


def check_greedy(model, prompt, got, what):
    want, margins, _ = model.generate_greedy(prompt, len(got))
    want = [int(t) for t in want]
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            assert margins[i] < TIE, (
                f"{what}: token {i} is {a}, eager PyTorch (KV cache) gives {b} with a top-2 "
                f"margin of {margins[i]:.3g} (not a tie < {TIE}); kiln {got}, eager {want}")
            return  # a tie: the rest may legitimately differ
    assert got == want


@pytest.mark.parametrize("n", [5, 8, 16, 19])
def test_greedy_matches_eager_kv_cache(llm, n):
    """Chunked prefill (< C padded, == C, 2 chunks, overlapping last chunk) + 40 decode steps."""
    prompt = prompt_of(n, seed=n)
    got = ids_of(generate(llm.out, ["--prompt-tokens", ",".join(map(str, prompt)), "-n", 40,
                                    "--ignore-eos", "--print-token-ids"]))
    assert len(got) == 40
    assert len(set(got)) > 5, f"degenerate test model: {got}"
    check_greedy(llm.model, prompt, got, f"prompt of {n} tokens (C={C})")


def test_prompt_logits_match_eager(llm):
    """Program.prompt_logits: every prompt row, overlap path included, within 1e-4."""
    import kiln
    prompt = prompt_of(21, seed=3)
    got = kiln.load(llm.out).prompt_logits(prompt)
    with torch.no_grad():
        want = llm.model(torch.tensor([prompt]))[0].numpy()
    assert got.shape == (21, V)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= 1e-4, f"prompt logits [21, {V}]: relative max error {err:.3g} > 1e-4"


def test_prefill_last_is_one_row_of_prefill(llm):
    """prefill_last(tokens, start, last) = row `last` of prefill(tokens, start), same cache."""
    import kiln
    prog = kiln.load(llm.out)
    assert "prefill_last" in prog.methods, prog.methods
    tokens = np.array([prompt_of(C, seed=12)], dtype=np.int64)
    for start, last in ((0, C - 1), (0, 3), (S - C, C // 2)):
        prog.reset_state()
        want = prog.run("prefill", [tokens, np.array([start], np.int64)])[0]
        prog.reset_state()
        got = prog.run("prefill_last", [tokens, np.array([start], np.int64),
                                        np.array([last], np.int64)])[0]
        assert got.shape == (1, 1, V), got.shape
        err = np.abs(got[0, 0] - want[0, last]).max() / np.abs(want[0, last]).max()
        assert err <= 1e-5, (f"prefill_last start {start} last {last}: relative max error "
                              f"{err:.3g} against prefill's row (bound 1e-5)")


def test_program_without_prefill_last_decodes_last_prompt_token(tmp_path_factory, llm):
    """--methods prefill,decode (and programs from before prefill_last): the runner prefills
    n-1 positions and decodes the last prompt token; greedy ids still match eager."""
    out = str(tmp_path_factory.mktemp("no_prefill_last") / "two.kiln")
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", llm.ckpt, "-o", out,
                             "--max-seq-len", S, "--prefill-chunk", C,
                             "--methods", "prefill,decode"], timeout=300)
    assert proc.returncode == 0, harness.describe(proc)
    import kiln
    assert sorted(kiln.load(out).methods) == ["decode", "prefill"]
    for n in (5, C, C + 3):
        prompt = prompt_of(n, seed=20 + n)
        args = ["--prompt-tokens", ",".join(map(str, prompt)), "-n", 12, "--ignore-eos",
                "--print-token-ids"]
        got = ids_of(generate(out, args))
        check_greedy(llm.model, prompt, got, f"program without prefill_last, prompt of {n}")
        assert got == ids_of(generate(llm.out, args)), \
            f"prompt of {n}: with and without prefill_last the greedy ids differ"


def test_stops_when_cache_is_full(llm):
    """n = S - 4: tokens at positions 60..64 (the last cannot be decoded) -> 5 tokens."""
    prompt = prompt_of(S - 4, seed=5)
    proc = generate(llm.out, ["--prompt-tokens", ",".join(map(str, prompt)), "-n", 100,
                              "--ignore-eos", "--print-token-ids"])
    got = ids_of(proc)
    assert len(got) == 5, harness.describe(proc)
    assert "KV cache full" in proc.stderr
    check_greedy(llm.model, prompt, got, "cache end")


def test_longest_prompt_and_too_long(llm):
    ok = generate(llm.out, ["--prompt-tokens", ",".join(map(str, prompt_of(S - 1))), "-n", 10,
                            "--print-token-ids"])
    assert 1 <= len(ids_of(ok)) <= 2
    proc = generate(llm.out, ["--prompt-tokens", ",".join(map(str, prompt_of(S))), "-n", 4],
                    ok=False)
    assert proc.returncode == 1, harness.describe(proc)
    assert f"{S} tokens" in proc.stderr and f"holds {S} positions" in proc.stderr
    assert "--max-seq-len" in proc.stderr
    assert "Traceback" not in proc.stderr and "Segmentation" not in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--prompt-tokens", "1,600"], "outside the vocabulary [0, 512)"),
    (["--prompt-tokens", "1,x"], "'x' is not a token id"),
    (["--prompt-tokens", "1", "--top-p", "0"], "--top-p"),
    (["--prompt-tokens", "1", "--temperature", "-1"], "--temperature"),
    (["-n", "3"], "missing --prompt"),
    (["--prompt", "a", "--prompt-tokens", "1"], "not both"),
])
def test_bad_arguments(llm, args, message):
    proc = generate(llm.out, args, ok=False)
    assert proc.returncode == 1 and message in proc.stderr, harness.describe(proc)


def test_not_an_llm_program(tmp_path):
    lin = torch.nn.Linear(4, 3).eval()
    pt = str(tmp_path / "lin.pt")
    harness.trace(lin, [np.zeros((2, 4), np.float32)]).save(pt)
    out = str(tmp_path / "lin.kiln")
    harness.compile_ok("linear", pt, out)
    proc = generate(out, ["--prompt-tokens", "1,2"], ok=False)
    assert proc.returncode == 1 and "not an LLM program: no 'prefill' method" in proc.stderr, \
        harness.describe(proc)


def test_sampling_is_seeded(llm):
    prompt = ",".join(map(str, prompt_of(6, seed=9)))
    base = ["--prompt-tokens", prompt, "-n", 32, "--ignore-eos", "--print-token-ids",
            "--temperature", "1.0"]
    a = ids_of(generate(llm.out, base + ["--seed", 1]))
    b = ids_of(generate(llm.out, base + ["--seed", 1]))
    c = ids_of(generate(llm.out, base + ["--seed", 2]))
    assert a == b, "same seed, different tokens"
    assert a != c, "seeds 1 and 2 gave the same 32 sampled tokens"
    greedy = ids_of(generate(llm.out, ["--prompt-tokens", prompt, "-n", 32, "--ignore-eos",
                                       "--print-token-ids"]))
    assert a != greedy, "temperature 1 sampling gave exactly the greedy tokens"
    tiny = ids_of(generate(llm.out, base + ["--seed", 3, "--top-p", "1e-6"]))
    assert tiny == greedy, "top-p 1e-6 keeps only the most likely token: must equal greedy"


def test_text_streams_prompt_then_continuation(llm):
    text = "The quick brown fox"
    ids = [1] + llm.sp.encode(text)
    proc = harness.run_tool([harness.binary("kiln-runtime"), "generate", llm.out, "--prompt",
                             text, "-n", 24, "--ignore-eos"])
    assert proc.returncode == 0, harness.describe(proc)
    got_ids = ids_of(generate(llm.out, ["--prompt-tokens", ",".join(map(str, ids)), "-n", 24,
                                        "--ignore-eos", "--print-token-ids"]))
    check_greedy(llm.model, ids, got_ids, "text prompt")
    # The continuation as sentencepiece spells it after the prompt (word-start spaces kept).
    cont = llm.sp.decode(ids + got_ids)[len(llm.sp.decode(ids)):]
    assert proc.stdout == text + cont + "\n"
    for key in ("prompt tokens: %d" % len(ids), "prefill:", "tokens/s", "generated tokens: 24",
                "decode:", "stop: max new tokens"):
        assert key in proc.stderr, harness.describe(proc)


def test_python_generate(llm):
    import kiln
    prog = kiln.load(llm.out)
    assert prog.is_llm and prog.llm_info["max_seq_len"] == S
    assert prog.llm_info["tokenizer"] == "sentencepiece"
    pieces = []
    r = prog.generate("The quick brown fox", max_new_tokens=24, ignore_eos=True,
                      stream=lambda i, t: pieces.append((i, t)))
    assert r.prompt_tokens == [1] + llm.sp.encode("The quick brown fox")
    check_greedy(llm.model, r.prompt_tokens, r.tokens, "Program.generate")
    assert [i for i, _ in pieces] == r.tokens
    assert "".join(t for _, t in pieces) == r.text
    assert r.text == llm.sp.decode(r.prompt_tokens + r.tokens)[len(llm.sp.decode(r.prompt_tokens)):]
    assert r.stop_reason == "max_new_tokens" and r["tokens"] == r.tokens
    assert r.prefill_tokens_per_second > 0 and r.decode_tokens_per_second > 0
    # Same tokens from ids; a callback returning False stops.
    again = prog.generate(prompt_tokens=r.prompt_tokens, max_new_tokens=24, ignore_eos=True)
    assert again.tokens == r.tokens
    stopped = prog.generate(prompt_tokens=r.prompt_tokens, max_new_tokens=24, ignore_eos=True,
                            stream=lambda i, t: len(t) < 0)
    assert stopped.tokens == r.tokens[:1] and stopped.stop_reason == "callback"
    # Errors are exceptions with the runner's message.
    with pytest.raises(ValueError, match="prompt is empty"):
        prog.generate(prompt_tokens=[])
    with pytest.raises(ValueError, match="--max-seq-len"):
        prog.generate(prompt_tokens=[1] * S)
    with pytest.raises(ValueError, match="not both"):
        prog.generate("a", prompt_tokens=[1])

    def boom(i, t):
        raise KeyError("from the callback")
    with pytest.raises(KeyError, match="from the callback"):
        prog.generate(prompt_tokens=[1, 2], stream=boom)
    with pytest.raises(RuntimeError, match="busy in generate"):
        prog.generate(prompt_tokens=[1, 2], stream=lambda i, t: prog.reset_state())
    # Threads take turns on one program: each gets the tokens it would alone.
    import threading
    results = {}

    def work(k):
        results[k] = prog.generate(prompt_tokens=r.prompt_tokens, max_new_tokens=24,
                                   ignore_eos=True).tokens
    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == r.tokens for k in range(3)), results


def test_streamed_pieces_join_to_the_text(llm):
    """Sampling from random weights generates byte-fallback tokens (<0xE2> ...): the
    streamed pieces still join to exactly the generated text. (Holding back cut
    characters is unit-tested in tests/unit/runtime/TextStreamTest.cpp.)"""
    import kiln
    prog = kiln.load(llm.out)
    byte_ids = {i for i in range(V) if llm.sp.id_to_piece(i).startswith("<0x")}
    assert len(byte_ids) == 256
    seen_bytes = 0
    for seed in range(4):
        pieces = []
        r = prog.generate(prompt_tokens=[1, 40, 50], max_new_tokens=40, temperature=1.0,
                          seed=seed, ignore_eos=True, stream=lambda i, t: pieces.append(t))
        seen_bytes += sum(t in byte_ids for t in r.tokens)
        assert len(pieces) == len(r.tokens) == 40
        assert "".join(pieces) == r.text
    assert seen_bytes > 0, "no byte tokens were generated: the test checked nothing"


def test_text_prompt_needs_tokenizer(bare):
    proc = generate(bare.out, ["--prompt", "hello"], ok=False)
    assert proc.returncode == 1 and "--prompt-tokens" in proc.stderr and \
        "no tokenizer" in proc.stderr, harness.describe(proc)
    # Token prompts work; without --print-token-ids the ids are the output.
    proc = generate(bare.out, ["--prompt-tokens", "1,5,9", "-n", 6, "--ignore-eos"])
    assert re.fullmatch(r"\d+( \d+){5}\n", proc.stdout), harness.describe(proc)
    check_greedy(bare.model, [1, 5, 9], [int(t) for t in proc.stdout.split()], "no tokenizer")


def test_usage_lists_generate():
    for tool in ("kiln", "kiln-runtime"):
        proc = harness.run_tool([harness.binary(tool), "--help"])
        assert proc.returncode == 0 and "generate" in proc.stdout, harness.describe(proc)
    proc = harness.run_tool([harness.binary("kiln"), "generate", "--help"])
    assert proc.returncode == 0 and "--print-token-ids" in proc.stdout, harness.describe(proc)
