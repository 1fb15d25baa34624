"""Byte-level BPE in the Hugging Face `tokenizer.json` format: a trainer and a pure
Python reference encoder/decoder (docs/llm.md §4).

The runtime's C++ tokenizer (runtime-stub/llm/BpeTokenizer.cpp) runs the pre-tokenizer
regex under PCRE2. This module does not use a regex engine at all (Python's `re` has
no \\p{L}, and the `regex` module is not installed): the two supported patterns,
Llama-3's and GPT-2's, are matched by hand-written scanners over Unicode general
categories from `unicodedata`, following PCRE2's semantics (alternatives tried in
order at each position, greedy quantifiers with backtracking, `\\s` = \\p{Z} plus the
\\h and \\v characters). That makes this module an independent reference.

Command line:
    python3 -m kiln.tokenizers.bpe train CORPUS -o tokenizer.json [--vocab-size N]
        [--pattern llama3|gpt2] [--merges-format strings|pairs] [--no-ignore-merges]
    python3 -m kiln.tokenizers.bpe encode tokenizer.json (--text S | --text-file F [--lines])
    python3 -m kiln.tokenizers.bpe decode tokenizer.json IDS
"""
import argparse
import collections
import json
import sys
import unicodedata
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

LLAMA3_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                         "<|end_header_id|>", "<|eot_id|>"]

# ----------------------------------------------------------------- character classes

# PCRE2 with UCP: \s is \p{Z} plus \h and \v (pcre2pattern, "Generic character types").
_H_SPACE = {0x09, 0x20, 0xA0, 0x1680, 0x180E, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000}
_V_SPACE = {0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029}


def is_space(c: str) -> bool:
    o = ord(c)
    return o in _H_SPACE or o in _V_SPACE or unicodedata.category(c).startswith("Z")


def is_letter(c: str) -> bool:
    return unicodedata.category(c).startswith("L")


def is_number(c: str) -> bool:
    return unicodedata.category(c).startswith("N")


def _is_other(c: str) -> bool:
    """[^\\s\\p{L}\\p{N}]"""
    return not (is_space(c) or is_letter(c) or is_number(c))


def _run(text: str, i: int, pred) -> int:
    """End of the run of characters satisfying pred starting at i."""
    while i < len(text) and pred(text[i]):
        i += 1
    return i


# Case-insensitive matching of the contraction suffixes, as PCRE2's caseless UTF mode
# folds them: 's' also matches U+017F LATIN SMALL LETTER LONG S.
_FOLDS = {"s": "sS\u017f", "t": "tT", "r": "rR", "e": "eE", "v": "vV", "m": "mM", "l": "lL",
          "d": "dD"}
_CONTRACTIONS = ["s", "t", "re", "ve", "m", "ll", "d"]


def _contraction(text: str, i: int, caseless: bool) -> int:
    if text[i] != "'":
        return 0
    for suffix in _CONTRACTIONS:
        if i + 1 + len(suffix) > len(text):
            continue
        if all(text[i + 1 + k] in (_FOLDS[ch] if caseless else ch) for k, ch in enumerate(suffix)):
            return 1 + len(suffix)
    return 0


def _whitespace_tail(text: str, i: int) -> int:
    """\\s+(?!\\S)|\\s+ at i (i is a space): the length of the match."""
    j = _run(text, i, is_space)
    if j == len(text) or j - i == 1:
        return j - i  # at the end, or a single space before a non-space: \s+ takes it
    return j - i - 1  # leave the last space to the next piece


def split_llama3(text: str) -> List[str]:
    """Llama-3's pre-tokenizer regex (LLAMA3_PATTERN), as find-all."""
    pieces = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        length = _contraction(text, i, caseless=True)
        if not length and i + 1 < n and c not in "\r\n" and not is_letter(c) and not is_number(c) \
                and is_letter(text[i + 1]):
            length = _run(text, i + 1, is_letter) - i  # [^\r\n\p{L}\p{N}]\p{L}+
        if not length and is_letter(c):
            length = _run(text, i, is_letter) - i  # \p{L}+
        if not length and is_number(c):
            length = min(_run(text, i, is_number) - i, 3)  # \p{N}{1,3}
        if not length:  # ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            start = i + 1 if c == " " and i + 1 < n and _is_other(text[i + 1]) else i
            if _is_other(text[start]):
                j = _run(text, start, _is_other)
                j = _run(text, j, lambda ch: ch in "\r\n")
                length = j - i
        if not length and is_space(c):  # \s*[\r\n]+
            j = _run(text, i, is_space)
            last = max((k for k in range(i, j) if text[k] in "\r\n"), default=-1)
            if last >= 0:
                length = last + 1 - i
        if not length:  # \s+(?!\S)|\s+
            length = _whitespace_tail(text, i)
        assert length > 0, (text, i)
        pieces.append(text[i:i + length])
        i += length
    return pieces


def split_gpt2(text: str) -> List[str]:
    """GPT-2's pre-tokenizer regex (GPT2_PATTERN, ByteLevel use_regex), as find-all."""
    pieces = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        length = _contraction(text, i, caseless=False)
        start = i + 1 if c == " " and i + 1 < n else i
        for pred in (is_letter, is_number, _is_other):  # ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`
            if length:
                break
            if pred(text[start]):
                length = _run(text, start, pred) - i
            elif start != i and pred(c):
                length = _run(text, i, pred) - i
        if not length:
            length = _whitespace_tail(text, i)
        assert length > 0, (text, i)
        pieces.append(text[i:i + length])
        i += length
    return pieces


SPLITTERS = {LLAMA3_PATTERN: split_llama3, GPT2_PATTERN: split_gpt2}

# ------------------------------------------------------------------ byte-level alphabet


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's map: printable bytes stand for themselves, the other 68 bytes take
    U+0100 onwards in byte order."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def to_byte_level(piece: str) -> str:
    return "".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8"))

# ----------------------------------------------------------------------------- trainer


def train(corpus: str, vocab_size: int = 600, pattern: str = LLAMA3_PATTERN,
          special_tokens: Sequence[str] = LLAMA3_SPECIAL_TOKENS) -> Tuple[Dict[str, int], List[Tuple[str, str]], Dict[str, int]]:
    """Learns merges on `corpus` until the vocabulary (256 byte tokens + merges) has
    `vocab_size` entries or no pair occurs twice. Returns (vocab, merges, added),
    added = special token -> id, numbered after the vocabulary."""
    split = SPLITTERS[pattern]
    words = collections.Counter(to_byte_level(p) for p in split(corpus))
    vocab = {BYTE_TO_CHAR[b]: b for b in range(256)}
    seqs = {w: list(w) for w in words}
    merges = []
    while len(vocab) < vocab_size:
        pairs = collections.Counter()
        for w, count in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        # Most frequent; ties go to the lexicographically smallest pair (deterministic).
        best, count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if count < 2:
            break
        merged = best[0] + best[1]
        merges.append(best)
        vocab.setdefault(merged, len(vocab))
        for w in words:
            s = seqs[w]
            out, k = [], 0
            while k < len(s):
                if k + 1 < len(s) and (s[k], s[k + 1]) == best:
                    out.append(merged)
                    k += 2
                else:
                    out.append(s[k])
                    k += 1
            seqs[w] = out
    added = {tok: len(vocab) + k for k, tok in enumerate(special_tokens)}
    return vocab, merges, added


def tokenizer_json(vocab: Dict[str, int], merges: List[Tuple[str, str]], added: Dict[str, int],
                   pattern: str = LLAMA3_PATTERN, merges_format: str = "strings",
                   ignore_merges: bool = True) -> dict:
    """The Hugging Face tokenizer.json document (Llama-3 layout: Split + ByteLevel;
    GPT-2 layout: ByteLevel with use_regex)."""
    if pattern == LLAMA3_PATTERN:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]}
    elif pattern == GPT2_PATTERN:
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
               "use_regex": True}
    else:
        raise ValueError("unknown pattern")
    if merges_format == "strings":
        merge_list = [f"{a} {b}" for a, b in merges]
    elif merges_format == "pairs":
        merge_list = [[a, b] for a, b in merges]
    else:
        raise ValueError(f"unknown merges format {merges_format!r}")
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for t, i in added.items()],
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": vocab, "merges": merge_list},
    }

# --------------------------------------------------------------- reference tokenizer


class BpeTokenizer:
    """Reference encoder/decoder for the tokenizer.json files this module writes (and
    the Llama-3 / GPT-2 layouts generally): the straightforward algorithm, no speedups."""

    def __init__(self, doc: dict):
        model = doc["model"]
        self.vocab: Dict[str, int] = dict(model["vocab"])
        self.ignore_merges = bool(model.get("ignore_merges", False))
        self.ranks: Dict[Tuple[str, str], int] = {}
        for rank, m in enumerate(model["merges"]):
            pair = tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
            self.ranks.setdefault(pair, rank)
        self.added = {t["content"]: t["id"] for t in doc.get("added_tokens") or []}
        for content, i in self.added.items():
            self.vocab.setdefault(content, i)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        pre = doc["pre_tokenizer"]
        steps = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        self.splitters = []
        for step in steps:
            if step["type"] == "Split":
                self.splitters.append(SPLITTERS[step["pattern"]["Regex"]])
            elif step["type"] == "ByteLevel" and step.get("use_regex", True):
                self.splitters.append(split_gpt2)

    @classmethod
    def from_file(cls, path: str) -> "BpeTokenizer":
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def _bpe(self, symbols: List[str]) -> List[str]:
        while len(symbols) > 1:
            ranked = [(self.ranks.get(p, None), k) for k, p in enumerate(zip(symbols, symbols[1:]))]
            ranked = [(r, k) for r, k in ranked if r is not None]
            if not ranked:
                break
            rank, _ = min(ranked)
            pair = next(p for p in zip(symbols, symbols[1:]) if self.ranks.get(p) == rank)
            out, k = [], 0
            while k < len(symbols):  # merge every occurrence, left to right
                if k + 1 < len(symbols) and (symbols[k], symbols[k + 1]) == pair:
                    out.append(symbols[k] + symbols[k + 1])
                    k += 2
                else:
                    out.append(symbols[k])
                    k += 1
            symbols = out
        return symbols

    def _encode_piece(self, piece: str) -> List[int]:
        chars = to_byte_level(piece)
        if self.ignore_merges and chars in self.vocab:
            return [self.vocab[chars]]
        return [self.vocab[s] for s in self._bpe(list(chars))]

    def _encode_plain(self, text: str) -> List[int]:
        pieces = [text] if text else []
        for split in self.splitters:
            pieces = [q for p in pieces for q in split(p)]
        return [i for p in pieces for i in self._encode_piece(p)]

    def encode(self, text: str) -> List[int]:
        ids, start, i = [], 0, 0
        by_length = sorted(self.added, key=len, reverse=True)
        while i < len(text):
            match = next((t for t in by_length if text.startswith(t, i)), None)
            if match is None:
                i += 1
                continue
            ids += self._encode_plain(text[start:i])
            ids.append(self.added[match])
            i += len(match)
            start = i
        return ids + self._encode_plain(text[start:])

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        out = bytearray()
        for i in ids:
            token = self.id_to_token[i]
            if all(c in CHAR_TO_BYTE for c in token):
                out += bytes(CHAR_TO_BYTE[c] for c in token)
            else:
                out += token.encode("utf-8")
        return bytes(out)

    def decode(self, ids: Iterable[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


def write_trained(corpus_path: str, out_path: str, vocab_size: int = 600,
                  pattern: str = LLAMA3_PATTERN, merges_format: str = "strings",
                  ignore_merges: bool = True) -> dict:
    with open(corpus_path, encoding="utf-8", newline="") as f:
        corpus = f.read()
    vocab, merges, added = train(corpus, vocab_size, pattern)
    doc = tokenizer_json(vocab, merges, added, pattern, merges_format, ignore_merges)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
    return doc


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m kiln.tokenizers.bpe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a byte-level BPE, write tokenizer.json")
    t.add_argument("corpus")
    t.add_argument("-o", "--output", required=True)
    t.add_argument("--vocab-size", type=int, default=600)
    t.add_argument("--pattern", choices=["llama3", "gpt2"], default="llama3")
    t.add_argument("--merges-format", choices=["strings", "pairs"], default="strings")
    t.add_argument("--no-ignore-merges", action="store_true")
    e = sub.add_parser("encode", help="print ids (reference encoder)")
    e.add_argument("tokenizer")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--text")
    g.add_argument("--text-file")
    e.add_argument("--lines", action="store_true")
    d = sub.add_parser("decode", help="print text (reference decoder)")
    d.add_argument("tokenizer")
    d.add_argument("ids")
    args = parser.parse_args(argv)
    if args.command == "train":
        pattern = LLAMA3_PATTERN if args.pattern == "llama3" else GPT2_PATTERN
        doc = write_trained(args.corpus, args.output, args.vocab_size, pattern,
                            args.merges_format, not args.no_ignore_merges)
        print(f"{args.output}: {len(doc['model']['vocab'])} tokens, "
              f"{len(doc['model']['merges'])} merges, {len(doc['added_tokens'])} added")
        return 0
    tok = BpeTokenizer.from_file(args.tokenizer)
    if args.command == "encode":
        if args.text is not None:
            texts = [args.text]
        else:
            with open(args.text_file, encoding="utf-8", newline="") as f:
                content = f.read()
            texts = content.split("\n") if args.lines else [content]
            if args.lines and texts and texts[-1] == "":
                texts.pop()
        for text in texts:
            print(" ".join(map(str, tok.encode(text))))
        return 0
    ids = [int(x) for x in args.ids.replace(",", " ").split()]
    sys.stdout.buffer.write(tok.decode_bytes(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
