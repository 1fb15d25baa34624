"""benchmarks/run.py smoke test: one --quick run on the tiny MobileLLM config, then every
figure of the JSON is checked for presence and sanity (positive; the roofline fraction is
decode speed / the roofline at Kiln's thread count). Speed is never gated here: the machine
is shared, and the tiny model's weights sit in cache, so its roofline fraction (a DRAM
roofline) may be far above 1. About 20 s."""
import json
import math
import os
import subprocess
import sys

import harness

RUN = os.path.join(harness.SOURCE_DIR, "benchmarks", "run.py")


def positive(value, what):
    assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, \
        f"{what} should be a positive number, got {value!r}"


def run_bench(tmp_path, *extra):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, RUN, "--quick", "--config", "tiny", "--build-dir", harness.BUILD_DIR,
           "--work-dir", str(tmp_path / "work"), "--out", str(out), "--bandwidth-mib", "128",
           *extra]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)
    return proc, out


def test_quick_tiny_run_writes_every_figure(tmp_path):
    # 96 decode tokens: the tiny model decodes in microseconds, generate times in ms.
    proc, out = run_bench(tmp_path, "--decode-tokens", "96")
    assert proc.returncode == 0, f"benchmarks/run.py failed:\n{proc.stderr[-3000:]}"
    assert "kiln fp32" in proc.stdout and "torch fp32" in proc.stdout, proc.stdout
    res = json.loads(out.read_text())

    assert res["settings"]["models"] == ["125M"] and res["settings"]["prompt_len"] == 128
    for t in ("1", "2"):
        positive(res["bandwidth_gbs"][t], f"bandwidth_gbs[{t}]")
    positive(res["runtime_stripped_bytes"], "runtime_stripped_bytes")
    assert res["runtime_stripped_bytes"] <= res["runtime_unstripped_bytes"]
    assert set(res["kiln_options"]) == {"threads", "kernels"}
    # Which CPU measured the figures (they differ a lot between machines).
    cpu = res["host"]["cpu"]
    assert set(cpu) == {"model", "vendor", "simd", "caches"}, cpu
    assert isinstance(cpu["model"], str) and isinstance(cpu["caches"], dict), cpu

    entry = res["models"]["125M"]
    assert set(entry["kiln"]) == {"fp32", "int8", "int4"}
    sizes = {}
    for fmt, r in entry["kiln"].items():
        for key in ("decode_tps", "prefill_tps", "load_s", "peak_rss_bytes", "program_bytes",
                    "constant_bytes", "kv_cache_bytes", "arena_bytes", "bytes_per_token"):
            positive(r[key], f"kiln {fmt} {key}")
        for t in ("1", "2"):
            positive(r["roofline_tps"][t], f"kiln {fmt} roofline_tps[{t}]")
        positive(r["roofline_fraction"], f"kiln {fmt} roofline_fraction")
        t = "2" if res["kiln_options"]["threads"] >= 2 else "1"
        expected = r["decode_tps"] / r["roofline_tps"][t]
        assert math.isclose(r["roofline_fraction"], expected, rel_tol=1e-9), \
            f"kiln {fmt} roofline_fraction {r['roofline_fraction']} != decode_tps / " \
            f"roofline_tps[{t}] = {expected}"
        assert r["constant_bytes"] < r["program_bytes"]
        # Tiny config: 2 layers x (k, v) x 2 kv heads x 256 positions x head_dim 16 x 4 bytes.
        assert r["kv_cache_bytes"] == 2 * 2 * 2 * 256 * 16 * 4, r["kv_cache_bytes"]
        # The peak RSS is the runtime process's own (a few MB), not the Python parent's.
        assert r["peak_rss_bytes"] < 64e6, f"kiln {fmt} peak RSS {r['peak_rss_bytes']}"
        sizes[fmt] = r["constant_bytes"]
    assert sizes["int4"] < sizes["int8"] < sizes["fp32"], sizes

    tr = entry["torch_fp32"]
    positive(tr["decode_tps"], "torch decode_tps")
    positive(tr["prefill_tps"], "torch prefill_tps")
    # Every torch x OpenBLAS thread setting of the default sweep was measured.
    assert set(tr["by_threads"]) == {"1x1", "1x2", "2x1", "2x2"}, tr["by_threads"]
    assert tr["best_threads"] in tr["by_threads"] and tr["prefill_best_threads"] in tr["by_threads"]
    for key, value in entry["ratios"].items():
        positive(value, key)
    # Same weights, same greedy decoding: fp32 Kiln and eager PyTorch agree on the ids.
    assert entry["fp32_tokens_match_torch"] is True


def test_bad_options_fail_cleanly(tmp_path):
    proc, out = run_bench(tmp_path, "--models", "350M")
    assert proc.returncode != 0 and "unknown model" in proc.stderr, proc.stderr
    proc, out = run_bench(tmp_path, "--decode-tokens", "200")
    assert proc.returncode != 0 and "exceeds --max-seq-len" in proc.stderr, proc.stderr
    assert not out.exists()
