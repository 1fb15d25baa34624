#!/usr/bin/env python3
"""Train the demo model's SentencePiece tokenizer on the training split.

Llama-2 style: BPE, byte fallback (every byte has a piece <0x00>..<0xFF>, so any text
encodes without <unk>), digits split, no normalisation (identity), a dummy prefix
space, unk 0, bos 1 (<s>), eos 2 (</s>), no pad. One thread, no sampling, no
shuffling: the same training text gives the same tokenizer.model bytes.

    /usr/bin/python3 examples/mobilellm/demo/train_tokenizer.py \
        [--data examples/mobilellm/demo/data] [--vocab-size 4096] [--out tokenizer.model]
"""
import argparse
import hashlib
import os
import shutil
import sys
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))


def train(train_txt, out_model, vocab_size):
    # The trainer records its input and output names in the model file: run it in a
    # scratch directory on fixed relative names so the bytes do not depend on paths.
    train_txt = os.path.abspath(train_txt)
    out_model = os.path.abspath(out_model)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            _train_here(train_txt, vocab_size)
        finally:
            os.chdir(cwd)
        tmp_out = out_model + ".tmp"
        shutil.copyfile(os.path.join(tmp, "tokenizer.model"), tmp_out)
        os.replace(tmp_out, out_model)


def _train_here(train_txt, vocab_size):
    os.symlink(train_txt, "train.txt")
    spm.SentencePieceTrainer.train(
        input="train.txt",
        model_prefix="tokenizer",
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=0.99995,
        byte_fallback=True,
        split_digits=True,
        split_by_unicode_script=True,
        split_by_whitespace=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
        input_sentence_size=0,
        shuffle_input_sentence=False,
        max_sentence_length=16384,
        num_threads=1,
        minloglevel=2,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--out", default=os.path.join(HERE, "data", "tokenizer.model"))
    args = ap.parse_args(argv)
    train_txt = os.path.join(args.data, "train.txt")
    if not os.path.isfile(train_txt):
        sys.exit(f"error: {train_txt} not found; run prepare_data.py first")
    train(train_txt, args.out, args.vocab_size)
    sp = spm.SentencePieceProcessor(model_file=args.out)
    with open(args.out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    counts = {}
    for split in ("train", "validation"):
        with open(os.path.join(args.data, f"{split}.txt"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        counts[split] = sum(len(ids) for ids in sp.encode(lines))
    print(f"{args.out}: vocab {sp.get_piece_size()}, sha256 {digest[:16]}..., "
          f"tokens train {counts['train']} validation {counts['validation']} (without bos/eos)")


if __name__ == "__main__":
    main()
