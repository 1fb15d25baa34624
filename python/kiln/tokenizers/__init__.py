"""Tokenizer tooling in pure Python: `kiln.tokenizers.bpe` trains a byte-level BPE and
writes it in the Hugging Face `tokenizer.json` format, and is the reference encoder /
decoder the runtime's C++ tokenizer is tested against (docs/llm.md §4)."""
