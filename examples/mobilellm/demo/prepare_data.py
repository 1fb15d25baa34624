#!/usr/bin/env python3
"""Build the demo model's training data from the Debian `fortunes` package.

Reads every fortune file in /usr/share/games/fortunes (the files without `.dat`;
`.u8` names are symlinks to the same files and are skipped; the offensive `off/`
directory is not used, and neither is `ascii-art`, which holds pictures, not text),
splits each file on its `%` separator lines, cleans each fortune and writes one
fortune per line:

    OUT/train.txt        ~95% of the fortunes
    OUT/validation.txt   ~5% of the fortunes
    OUT/data_info.json   package versions, files, fortune/byte counts, sha256

Cleaning: terminal overstrike (`_\\bX`, `X\\bX`) is removed, then every run of
whitespace (line wraps, tabs, indentation) becomes one space, so a fortune is one
line of plain text. Fortunes shorter than 8 characters or with more punctuation
than letters are dropped. Exact duplicates are kept once (the first, in file order).

The split is by fortune: the list (in sorted file order) is shuffled with
random.Random(SEED) and the first 5% go to validation. Same package version, same
seed -> byte-identical files.

    /usr/bin/python3 examples/mobilellm/demo/prepare_data.py [--out DIR] [--seed N]
"""
import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys

FORTUNE_DIR = "/usr/share/games/fortunes"
SKIP = {"ascii-art"}
HERE = os.path.dirname(os.path.abspath(__file__))


def package_versions():
    out = {}
    for pkg in ("fortunes", "fortunes-min"):
        try:
            v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                               capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            v = None
        out[pkg] = v
    return out


_OVERSTRIKE = re.compile(r".\x08")
_SPACE = re.compile(r"\s+")


def clean(text):
    prev = None
    while prev != text:  # "____\b\b\b\bonly": remove one char+backspace pair at a time
        prev = text
        text = _OVERSTRIKE.sub("", text)
    text = text.replace("\x08", "")
    return _SPACE.sub(" ", text).strip()


def keep(text):
    if len(text) < 8:
        return False
    letters = sum(c.isalpha() for c in text)
    punct = sum(not c.isalnum() and not c.isspace() for c in text)
    return letters > punct


def read_fortunes(path):
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8", errors="replace")
    chunks, cur = [], []
    for line in raw.split("\n"):
        if line.rstrip("\r") == "%":
            chunks.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    chunks.append("\n".join(cur))
    return chunks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--validation-fraction", type=float, default=0.05)
    args = ap.parse_args(argv)

    if not os.path.isdir(FORTUNE_DIR):
        sys.exit(f"error: {FORTUNE_DIR} not found; install it with: apt-get install -y fortunes")
    files = sorted(n for n in os.listdir(FORTUNE_DIR)
                   if not n.endswith((".dat", ".u8")) and n not in SKIP
                   and os.path.isfile(os.path.join(FORTUNE_DIR, n))
                   and not os.path.islink(os.path.join(FORTUNE_DIR, n)))
    if not files:
        sys.exit(f"error: no fortune files in {FORTUNE_DIR}")

    fortunes, seen, per_file = [], set(), {}
    source_bytes = 0
    for name in files:
        path = os.path.join(FORTUNE_DIR, name)
        source_bytes += os.path.getsize(path)
        n = 0
        for chunk in read_fortunes(path):
            text = clean(chunk)
            if not keep(text) or text in seen:
                continue
            seen.add(text)
            fortunes.append(text)
            n += 1
        per_file[name] = n

    order = list(range(len(fortunes)))
    random.Random(args.seed).shuffle(order)
    n_val = max(1, round(len(order) * args.validation_fraction))
    splits = {"validation": [fortunes[i] for i in order[:n_val]],
              "train": [fortunes[i] for i in order[n_val:]]}

    os.makedirs(args.out, exist_ok=True)
    info = {"source": FORTUNE_DIR, "packages": package_versions(), "files": per_file,
            "skipped_files": sorted(SKIP), "source_bytes": source_bytes, "seed": args.seed,
            "validation_fraction": args.validation_fraction, "splits": {}}
    for split, items in splits.items():
        data = "".join(t + "\n" for t in items).encode("utf-8")
        path = os.path.join(args.out, f"{split}.txt")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        info["splits"][split] = {"fortunes": len(items), "bytes": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}
    with open(os.path.join(args.out, "data_info.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    s = info["splits"]
    print(f"fortunes {info['packages']}: {len(files)} files, {source_bytes} bytes -> "
          f"train {s['train']['fortunes']} fortunes / {s['train']['bytes']} bytes, "
          f"validation {s['validation']['fortunes']} fortunes / {s['validation']['bytes']} bytes "
          f"in {args.out}")


if __name__ == "__main__":
    main()
