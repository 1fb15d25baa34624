"""Issue 6, per-token overhead: a decode step allocates nothing (docs/runtime-kernels.md
"Per-token overhead"). Counted with a malloc and write wrapper preloaded into
`kiln-runtime generate --print-token-ids` (built here with the system C compiler):
generate flushes stdout after every token it samples, so the malloc calls between
the second and the last flush are those of the decode steps in between
(load and prefill allocate a number that depends on address layout and thread
timing, so two processes cannot be compared). Checked for both kernel sets and 1 or
2 threads: fewer than one malloc per decode step (in practice none)."""
import os
import re
import shutil
import subprocess

import pytest

import harness
from test_generate import Llm, prompt_of

COUNTER = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
extern void *__libc_malloc(size_t);
static atomic_long calls, writes, atSecond, atLast;
void *malloc(size_t size) { atomic_fetch_add(&calls, 1); return __libc_malloc(size); }
extern int _IO_fflush(FILE *);
int fflush(FILE *stream) {
  if (stream == stdout) {
    long w = atomic_fetch_add(&writes, 1) + 1;
    if (w == 2)
      atomic_store(&atSecond, atomic_load(&calls));
    atomic_store(&atLast, atomic_load(&calls));
  }
  return _IO_fflush(stream);
}
__attribute__((destructor)) static void report(void) {
  fprintf(stderr, "stdout flushes: %ld, malloc calls between the second and the last: %ld\n",
          (long)atomic_load(&writes), (long)(atomic_load(&atLast) - atomic_load(&atSecond)));
}
"""

@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail("no C compiler (cc/gcc) to build the malloc counter", pytrace=False)
    d = tmp_path_factory.mktemp("malloc_counter")
    src, lib = d / "count.c", d / "count.so"
    src.write_text(COUNTER)
    proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stderr
    return str(lib)


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    return Llm(str(tmp_path_factory.mktemp("decode_alloc")), "bare", 13, False)


def decode_mallocs(counter, program, n, extra):
    prompt = ",".join(map(str, prompt_of(9, seed=2)))
    args = [harness.binary("kiln-runtime"), "generate", program, "--prompt-tokens", prompt,
            "-n", str(n), "--ignore-eos", "--print-token-ids"] + extra
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, LD_PRELOAD=counter), timeout=120)
    assert proc.returncode == 0, harness.describe(proc)
    m = re.search(r"stdout flushes: (\d+), malloc calls between the second and the last: (\d+)",
                  proc.stderr)
    assert m, "the malloc counter did not report:\n" + harness.describe(proc)
    assert len(proc.stdout.split()) == n, harness.describe(proc)
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("extra", [["--threads", "1"], ["--threads", "2"],
                                   ["--kernels", "portable", "--threads", "1"]])
def test_decode_steps_allocate_nothing(counter, llm, extra):
    writes, calls = decode_mallocs(counter, llm.out, 50, extra)
    # One flush per token (then the newline): ~48 decode steps between the 2nd and last.
    assert writes >= 50, f"{' '.join(extra)}: expected a flush per token, got {writes}"
    assert calls < writes - 2, (f"{' '.join(extra)}: {calls} malloc calls during "
                                f"{writes - 2} decode steps: a decode step should allocate "
                                f"nothing")
