"""Issue 6, per-token overhead: a decode step allocates nothing (docs/runtime-kernels.md
"Per-token overhead"). Counted with a malloc wrapper preloaded into `kiln-runtime
generate` (built here with the system C compiler): the difference between 60 and 10
generated tokens must stay below one allocation per token, for both kernel sets and
1 or 2 threads."""
import os
import shutil
import subprocess

import pytest

import harness
from test_generate import Llm, prompt_of

COUNTER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
extern void *__libc_malloc(size_t);
static atomic_long calls;
void *malloc(size_t size) { atomic_fetch_add(&calls, 1); return __libc_malloc(size); }
__attribute__((destructor)) static void report(void) {
  fprintf(stderr, "malloc calls: %ld\n", (long)atomic_load(&calls));
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


def mallocs(counter, program, n, extra):
    prompt = ",".join(map(str, prompt_of(9, seed=2)))
    args = [harness.binary("kiln-runtime"), "generate", program, "--prompt-tokens", prompt,
            "-n", str(n), "--ignore-eos", "--print-token-ids"] + extra
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, LD_PRELOAD=counter), timeout=120)
    assert proc.returncode == 0, harness.describe(proc)
    lines = [l for l in proc.stderr.splitlines() if l.startswith("malloc calls: ")]
    assert lines, "the malloc counter did not report:\n" + harness.describe(proc)
    return int(lines[-1].split(": ")[1])


@pytest.mark.parametrize("extra", [["--threads", "1"], ["--threads", "2"],
                                   ["--kernels", "portable", "--threads", "1"]])
def test_decode_steps_allocate_nothing(counter, llm, extra):
    few, many = mallocs(counter, llm.out, 10, extra), mallocs(counter, llm.out, 60, extra)
    assert many - few < 50, (f"{' '.join(extra)}: {many - few} malloc calls for 50 more "
                             f"decode steps ({few} with -n 10, {many} with -n 60): a decode "
                             f"step should allocate nothing")
