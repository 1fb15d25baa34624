"""Tokenizers end to end (docs/llm.md §4), through the `tokenize` command of both
`kiln-runtime` and `kiln`.

Fixtures are made here from tests/data/tokenizers/corpus.txt by our own code: two
sentencepiece models (python3-sentencepiece's trainer: a Llama-2-style BPE with
byte fallback and identity normalization, and a unigram with the default NFKC
rules) and two byte-level BPE tokenizer.json files (python/kiln/tokenizers/bpe.py:
Llama-3 Split regex + "a b" merges + ignore_merges, and GPT-2 ByteLevel regex +
["a","b"] merges). References: python sentencepiece for the sentencepiece models,
the pure-Python encoder of kiln.tokenizers.bpe for BPE (no shared code with the C++).
"""
import io
import json
import os
import random
import subprocess
import sys

import pytest

import harness

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))

from kiln.tokenizers import bpe  # noqa: E402

CORPUS = os.path.join(harness.SOURCE_DIR, "tests", "data", "tokenizers", "corpus.txt")

# Text the tokenizers were not trained on, aimed at the corners of the Llama-3 regex
# (contractions in any case, the long s, \s beyond ASCII, digit runs, CR/LF runs).
UNSEEN = [
    "Xylophones quizzically jinxed the wyvern's vexed sphinx.",
    "WE'LL, THEY'RE, I'D'VE, it'S, you'Ll, o'ſ and 'ſ vs 's, it'ſelf 'Sis 'LLama 'DVD",
    # Non-ASCII \s before punctuation: "other" (not \s) would join them into one piece.
    "a\u180e!b \u0085!c \u00a0?d \u2028.e \u3000,f \u2009;g \u000b:h \u000c#i \u200b!j",
    "1234567890 12 3 4444 5.5 ٣٤٥ ① ½ Ⅻ 0x1F",
    "a\u0085b\u180ec\u2028d\u2029e\u00a0f\u2007g\u3000h\u200bi\u202fj\u205fk\u1680l",
    "tabs\t\tand  \t spaces   before\tpunctuation  !!  ?? ",
    "   leading spaces and trailing   ",
    "Ελληνικά και русский и עברית و العربية ও বাংলা",
    "🧑‍🚀 👩🏾‍💻 🏳️‍🌈 🇺🇳 ✈︎ ⌘ ∮ 𝒜𝓁𝓅𝒽𝒶 𐍈",
    "mixedCASE_snake_case kebab-case CamelCase HTTPServer iOS",
    "<|begin_of_text|>Hi<|eot_id|><|end_of_text|> <|begin_of_text|",
    "e\u0301\u0301\u0301 combining marks, a\u20dd enclosed, Z\u0335\u0321a\u0336lgo",
    "'",
    "x",
    "",
]
MULTILINE = "line one\r\nline two\n\n\n  indented\n\t\ttabbed\r\r\n  \n end \n"


def tool(name="kiln-runtime"):
    return harness.binary(name)


def tokenize(args, name="kiln-runtime", ok=True):
    proc = harness.run_tool([tool(name), "tokenize"] + list(args))
    if ok:
        assert proc.returncode == 0, harness.describe(proc)
    return proc


def read_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def encode_lines(tokenizer, lines, tmp_path, name="kiln-runtime"):
    """C++ ids of each line (one `tokenize --lines` call)."""
    path = tmp_path / "lines.txt"
    path.write_bytes("\n".join(lines).encode("utf-8") + b"\n")
    out = tokenize(["--tokenizer", tokenizer, "--text-file", path, "--lines"], name).stdout
    rows = out.split("\n")[:-1]
    assert len(rows) == len(lines), f"{len(rows)} output lines for {len(lines)} inputs"
    return [[int(x) for x in row.split()] for row in rows]


def decode_lines(tokenizer, id_lists, tmp_path):
    """C++ decoding of each id list (one `tokenize --decode-file` call), as bytes."""
    path = tmp_path / "ids.txt"
    path.write_text("".join(" ".join(map(str, ids)) + "\n" for ids in id_lists))
    return run_bytes(["--tokenizer", tokenizer, "--decode-file", path]).split(b"\n")[:-1]


def run_bytes(args):
    """stdout of `kiln-runtime tokenize ARGS` as raw bytes (decoded text may be cut UTF-8)."""
    proc = subprocess.run([tool(), "tokenize"] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=harness.DEFAULT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    import sentencepiece as spm
    root = tmp_path_factory.mktemp("tokenizers")
    made = {}
    common = dict(input=CORPUS, minloglevel=2, hard_vocab_limit=False, character_coverage=0.98)
    for name, options in {
        # Llama-2 style (the MobileLLM tokenizer's settings), smaller.
        "sp_bpe": dict(vocab_size=800, model_type="bpe", byte_fallback=True,
                       normalization_rule_name="identity", remove_extra_whitespaces=False,
                       split_digits=True),
        "sp_unigram": dict(vocab_size=500, model_type="unigram"),  # default nmt_nfkc rules
    }.items():
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(model_writer=buf, **common, **options)
        path = root / f"{name}.model"
        path.write_bytes(buf.getvalue())
        made[name] = str(path)
    made["bpe_llama3"] = str(root / "llama3.json")
    bpe.write_trained(CORPUS, made["bpe_llama3"], 600, bpe.LLAMA3_PATTERN, "strings", True)
    made["bpe_gpt2"] = str(root / "gpt2.json")
    bpe.write_trained(CORPUS, made["bpe_gpt2"], 600, bpe.GPT2_PATTERN, "pairs", False)
    return made


def first_mismatch(lines, got, want):
    for k, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"line {k + 1} {lines[k]!r}:\n  C++       {g}\n  reference {w}"
    return None


# ---------------------------------------------------------------------- sentencepiece

@pytest.mark.parametrize("model", ["sp_bpe", "sp_unigram"])
def test_sentencepiece_encode_matches_python(fixtures, model, tmp_path):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=fixtures[model])
    lines = read_lines(CORPUS) + UNSEEN
    got = encode_lines(fixtures[model], lines, tmp_path)
    want = [sp.encode(line) for line in lines]
    assert got == want, first_mismatch(lines, got, want)
    whole = tokenize(["--tokenizer", fixtures[model], "--text", MULTILINE]).stdout.split()
    assert [int(x) for x in whole] == sp.encode(MULTILINE)


def test_sentencepiece_round_trip_and_decode_matches_python(fixtures, tmp_path):
    import sentencepiece as spm
    lines = read_lines(CORPUS) + UNSEEN
    # Identity normalization + byte fallback: decode(encode(x)) == x exactly.
    ids = encode_lines(fixtures["sp_bpe"], lines, tmp_path)
    decoded = decode_lines(fixtures["sp_bpe"], ids, tmp_path)
    bad = [(l, d) for l, d in zip(lines, decoded) if d != l.encode("utf-8")]
    assert not bad, f"{len(bad)} lines do not round-trip, first: {bad[0]}"
    # NFKC model: text changes (ﬁ -> fi, ＡＢＣ -> ABC); decoding must equal python's.
    sp = spm.SentencePieceProcessor(model_file=fixtures["sp_unigram"])
    ids = encode_lines(fixtures["sp_unigram"], lines, tmp_path)
    decoded = decode_lines(fixtures["sp_unigram"], ids, tmp_path)
    want = [sp.decode(i).encode("utf-8") for i in ids]
    assert decoded == want


# ------------------------------------------------------------------------------- bpe

@pytest.mark.parametrize("name", ["bpe_llama3", "bpe_gpt2"])
def test_bpe_matches_reference_and_round_trips(fixtures, name, tmp_path):
    ref = bpe.BpeTokenizer.from_file(fixtures[name])
    lines = read_lines(CORPUS) + UNSEEN
    got = encode_lines(fixtures[name], lines, tmp_path)
    want = [ref.encode(line) for line in lines]
    assert got == want, first_mismatch(lines, got, want)
    decoded = decode_lines(fixtures[name], got, tmp_path)
    assert decoded == [l.encode("utf-8") for l in lines]
    with open(CORPUS, encoding="utf-8", newline="") as f:
        corpus = f.read()
    for text in (corpus, MULTILINE):
        out = tokenize(["--tokenizer", fixtures[name], "--text", text]).stdout.split()
        assert [int(x) for x in out] == ref.encode(text)
    # The trainer's splitter is the reference's: every corpus piece is one token or more.
    assert len(ref.encode(corpus)) < len(corpus.encode("utf-8")) * 0.6, "merges do not compress"


@pytest.mark.parametrize("name", ["bpe_llama3", "bpe_gpt2"])
def test_pre_tokenizer_split_matches_reference(fixtures, name, tmp_path):
    """Makes the regex split itself visible: every piece the Python scanner finds
    becomes a vocabulary entry and ignore_merges is on, so a piece encodes to one
    id exactly when PCRE2 cut the text at the same places (ids alone could hide a
    different cut between characters that no merge joins)."""
    doc = json.load(open(fixtures[name], encoding="utf-8"))
    split = bpe.split_llama3 if name == "bpe_llama3" else bpe.split_gpt2
    lines = read_lines(CORPUS) + UNSEEN
    vocab = doc["model"]["vocab"]
    next_id = max(vocab.values()) + 1
    for line in lines + [MULTILINE]:
        for piece in split(line):
            if bpe.to_byte_level(piece) not in vocab:
                vocab[bpe.to_byte_level(piece)] = next_id
                next_id += 1
    for k, token in enumerate(doc["added_tokens"]):
        token["id"] = next_id + k
    doc["model"]["ignore_merges"] = True
    path = tmp_path / "pieces.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    ref = bpe.BpeTokenizer(doc)
    got = encode_lines(str(path), lines, tmp_path)
    want = [ref.encode(line) for line in lines]
    pieces = lambda ids: [ref.decode_bytes([i]) for i in ids]  # noqa: E731
    assert got == want, first_mismatch(lines, [pieces(g) for g in got], [pieces(w) for w in want])
    out = tokenize(["--tokenizer", path, "--text", MULTILINE]).stdout.split()
    assert [int(x) for x in out] == ref.encode(MULTILINE)


def test_bpe_special_tokens(fixtures):
    path = fixtures["bpe_llama3"]
    doc = json.load(open(path, encoding="utf-8"))
    special = {t["content"]: t["id"] for t in doc["added_tokens"]}
    text = "<|begin_of_text|>Hello<|eot_id|>\n<|end_of_text|>"
    ids = [int(x) for x in tokenize(["--tokenizer", path, "--text", text]).stdout.split()]
    assert ids[0] == special["<|begin_of_text|>"] and ids[-1] == special["<|end_of_text|>"], ids
    assert special["<|eot_id|>"] in ids, ids
    assert ids == bpe.BpeTokenizer.from_file(path).encode(text)
    out = tokenize(["--tokenizer", path, "--decode", ",".join(map(str, ids))]).stdout
    assert out == text


def test_both_tools_agree(fixtures):
    text = "Both tools: café 😀 <|begin_of_text|>"
    for name in ("sp_bpe", "bpe_llama3"):
        a = tokenize(["--tokenizer", fixtures[name], "--text", text], "kiln-runtime").stdout
        b = tokenize(["--tokenizer", fixtures[name], "--text", text], "kiln").stdout
        assert a == b and a.strip(), (a, b)


def test_decode_keeps_a_cut_utf8_sequence_raw(fixtures):
    text = "ok 🦖"  # not in the corpus: its 4 bytes are (mostly) byte tokens in both
    for name in ("sp_bpe", "bpe_llama3"):
        ids = tokenize(["--tokenizer", fixtures[name], "--text", text]).stdout.split()
        cut_inside = 0
        for cut in range(1, len(ids) + 1):
            raw = run_bytes(["--tokenizer", fixtures[name], "--decode", ",".join(ids[:cut])])
            assert text.encode("utf-8").startswith(raw), (name, cut, raw)
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                cut_inside += 1
        assert cut_inside >= 1, f"{name}: no prefix of {ids} cuts the emoji; the test tests nothing"


# ---------------------------------------------------------------------------- errors

def expect_error(args, *needles):
    proc = tokenize(args, ok=False)
    assert proc.returncode == 1, harness.describe(proc)
    assert proc.stdout == "", "partial output on error: " + harness.describe(proc)
    assert "error:" in proc.stderr, harness.describe(proc)
    for needle in needles:
        assert needle in proc.stderr, f"'{needle}' not in the message:\n{proc.stderr}"


def test_decode_out_of_range_is_an_error(fixtures):
    for name, size in (("sp_bpe", 800), ("bpe_llama3", 605)):
        expect_error(["--tokenizer", fixtures[name], "--decode", f"5,{size}"], str(size))
        expect_error(["--tokenizer", fixtures[name], "--decode", "5,-3"], "-3")
        expect_error(["--tokenizer", fixtures[name], "--decode", "5,x"], "'x'")


def test_bad_command_lines_and_files(fixtures, tmp_path):
    expect_error(["--text", "hi"], "--tokenizer")
    expect_error(["--tokenizer", fixtures["sp_bpe"]], "exactly one")
    expect_error(["--tokenizer", str(tmp_path / "missing.model"), "--text", "x"], "missing.model")
    expect_error(["--tokenizer", CORPUS, "--text", "x"], "kind")
    expect_error(["--tokenizer", CORPUS, "--kind", "bpe", "--text", "x"], "JSON")
    expect_error(["--tokenizer", CORPUS, "--kind", "sentencepiece", "--text", "x"], "sentencepiece")
    expect_error(["--tokenizer", fixtures["sp_bpe"], "--kind", "wordpiece", "--text", "x"],
                 "wordpiece")


def test_unsupported_tokenizer_json_features_are_named(fixtures, tmp_path):
    doc = json.load(open(fixtures["bpe_llama3"], encoding="utf-8"))
    cases = [
        ("normalizer", {"type": "NFKC"}, "NFKC"),
        ("pre_tokenizer", {"type": "Metaspace", "replacement": "▁"}, "Metaspace"),
        ("decoder", {"type": "Metaspace"}, "Metaspace"),
        ("model", dict(doc["model"], type="WordPiece"), "WordPiece"),
    ]
    for key, value, needle in cases:
        bad = dict(doc, **{key: value})
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(bad))
        expect_error(["--tokenizer", path, "--text", "x"], needle)


def test_malformed_files_fail_cleanly(fixtures, tmp_path):
    """Truncated and byte-garbled files: exit 1 with a message, or (garbling that
    still parses) a normal run; never a crash or a partial output."""
    rng = random.Random(5)
    crashed = []
    for name in ("sp_bpe", "sp_unigram", "bpe_llama3"):
        data = open(fixtures[name], "rb").read()
        ext = os.path.splitext(fixtures[name])[1]
        variants = [data[:n] for n in sorted(rng.sample(range(len(data) - 2), 12))]
        for _ in range(20):
            b = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            variants.append(bytes(b))
        for k, v in enumerate(variants):
            path = tmp_path / f"{name}_{k}{ext}"
            path.write_bytes(v)
            proc = tokenize(["--tokenizer", path, "--text", "Hello wörld 😀 ＡＢＣ"], ok=False)
            if proc.returncode not in (0, 1) or (proc.returncode == 1 and (
                    proc.stdout or "error:" not in proc.stderr)):
                crashed.append(f"{path.name}: " + harness.describe(proc))
            if k < 12 and ext == ".json":  # a truncated JSON never loads (a protobuf cut
                assert proc.returncode == 1, harness.describe(proc)  # between fields may)
    assert not crashed, "\n".join(crashed[:3])
