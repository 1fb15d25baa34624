#!/usr/bin/python3
"""Kiln vs PyTorch eager on MobileLLM shapes, in one run. See benchmarks/README.md.

    /usr/bin/python3 benchmarks/run.py [--quick] [--config published|tiny] [--models 125M,LS-125M]
        [--build-dir build] [--out benchmarks/results/latest.json] [--max-seq-len 256]
        [--prompt-len 128] [--decode-tokens 64] [--repeats 4] [--threads 2]

Per model: a seeded random checkpoint (kiln.models.testing, published layout), exported by
`kiln export-hf` as fp32, int8 and int4 (group 32); `kiln-runtime generate` measures prefill
and decode speed, peak RSS and load time; PyTorch eager (kiln.models.mobilellm, KV cache)
runs on the same weights with 1 and 2 threads. A streaming-read probe measures memory
bandwidth for the roofline. Prints a table and writes JSON.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
FORMATS = [("fp32", ["--quantize", "none"]), ("int8", ["--quantize", "int8"]),
           ("int4", ["--quantize", "int4", "--group-size", "32"])]


class BenchError(RuntimeError):
    pass


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, timeout=1800):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise BenchError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stderr[-2000:]}")
    return proc


def spawn_measured(cmd, work, timeout=1800):
    """Runs cmd under /usr/bin/time for its own peak RSS (wait4 on a child of Python would
    report Python's RSS: ru_maxrss survives fork + exec). Returns (stdout, stderr, wall
    seconds, peak RSS bytes)."""
    timer = shutil.which("time", path="/usr/bin:/bin")
    if not timer:
        raise BenchError("/usr/bin/time not found (Debian package 'time', see scripts/setup.sh)")
    rss_file = os.path.join(work, "peak_rss.txt")
    start = time.perf_counter()
    proc = run([timer, "-f", "%M", "-o", rss_file] + cmd, timeout=timeout)
    wall = time.perf_counter() - start
    with open(rss_file) as f:
        text = f.read().strip().splitlines()
    if not text or not text[-1].isdigit():
        raise BenchError(f"cannot read the peak RSS from {rss_file}: {text!r}")
    return proc.stdout, proc.stderr, wall, int(text[-1]) * 1024  # %M is in KiB


# ---------------------------------------------------------------------- host
def read_text(path):
    with open(path) as f:
        return f.read().strip()


def cpu_description():
    """The CPU model, vendor and caches (lscpu-style, from /proc/cpuinfo and sysfs):
    figures differ a lot between machines (docs/runtime-kernels.md), so the JSON says
    which one measured them. Missing files give empty fields, never an error."""
    info = {"model": "", "vendor": "", "simd": [], "caches": {}}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and not info["model"]:
                    info["model"] = value
                elif key == "vendor_id" and not info["vendor"]:
                    info["vendor"] = value
                elif key == "flags" and not info["simd"]:
                    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
                    info["simd"] = [x for x in wanted if x in value.split()]
    except OSError:
        pass
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            try:
                level, kind, size = (read_text(os.path.join(base, entry, name))
                                     for name in ("level", "type", "size"))
            except OSError:
                continue
            if kind != "Instruction":
                info["caches"][f"L{level}"] = size
    except OSError:
        pass
    return info


# ---------------------------------------------------------------------- bandwidth

def bandwidth_binary(build_dir, work):
    built = os.path.join(build_dir, "bin", "kiln-bandwidth")
    if os.path.exists(built):
        return built
    exe = os.path.join(work, "kiln-bandwidth")
    src = os.path.join(HERE, "bandwidth.cpp")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
        if not cxx:
            raise BenchError("no C++ compiler to build benchmarks/bandwidth.cpp "
                             "(or build the kiln-bandwidth target)")
        run([cxx, "-O3", "-std=c++17", "-pthread", src, "-o", exe])
    return exe


def measure_bandwidth(exe, threads, mib):
    out = run([exe, "--threads", str(threads), "--mib", str(mib), "--repeats", "5"]).stdout
    m = re.search(r"bandwidth_gbs\s+([0-9.]+)", out)
    if not m:
        raise BenchError(f"unexpected kiln-bandwidth output: {out!r}")
    return float(m.group(1))


# ---------------------------------------------------------------------- models

def model_config(name, tiny):
    from kiln.models.mobilellm import build_config, tiny_config
    if tiny:
        family = "mobilellm-ls" if name.startswith("LS") else "mobilellm"
        return tiny_config(family)
    return build_config(name)


def prepare_checkpoint(work, name, config, seed):
    from kiln.models.testing import write_random_checkpoint
    ckpt = os.path.join(work, "checkpoints", name)
    cfg_path = os.path.join(ckpt, "config.json")
    stamp = os.path.join(ckpt, ".seed")
    want = json.dumps({"config": config, "seed": seed}, sort_keys=True)
    if os.path.exists(stamp) and open(stamp).read() == want:
        return ckpt
    shutil.rmtree(ckpt, ignore_errors=True)
    log(f"{name}: writing seeded random checkpoint")
    write_random_checkpoint(ckpt, config, seed=seed)
    with open(stamp, "w") as f:
        f.write(want)
    assert os.path.exists(cfg_path)
    return ckpt


def export(kiln, ckpt, out, fmt_args, max_seq_len):
    if os.path.exists(out) and os.path.getmtime(out) > os.path.getmtime(
            os.path.join(ckpt, ".seed")) and os.path.getmtime(out) > os.path.getmtime(kiln):
        return 0.0
    log(f"export-hf {' '.join(fmt_args)} -> {os.path.basename(out)}")
    tmp = out + ".tmp.kiln"
    start = time.perf_counter()
    run([kiln, "export-hf", ckpt, "-o", tmp, "--max-seq-len", str(max_seq_len)] + fmt_args)
    os.replace(tmp, out)
    return time.perf_counter() - start


def inspect(runtime, program):
    d = json.loads(run([runtime, "inspect", program, "--json"]).stdout)
    return {"file_bytes": d["file_bytes"], "constant_bytes": d["constant_bytes"],
            "kv_cache_bytes": d["state_bytes"],
            "arena_bytes": max(m.get("arena_bytes", 0) for m in d["methods"].values())}


GEN_RE = {
    "prompt_tokens": r"prompt tokens: (\d+)",
    "prefill_s": r"prefill: .*?\(([0-9.]+) s\)",
    "generated": r"generated tokens: (\d+)",
    "decode_s": r"decode: .*?\(([0-9.]+) s\)",
}


def parse_generate(err):
    vals = {}
    for key, rx in GEN_RE.items():
        m = re.search(rx, err)
        if not m:
            raise BenchError(f"cannot find '{key}' in generate's stderr:\n{err[-1000:]}")
        vals[key] = float(m.group(1))
    return vals


def generate_options(runtime, threads):
    """The speed options `generate` supports in this build (detected from --help)."""
    help_text = run([runtime, "generate", "--help"]).stdout
    opts, used = [], {"threads": None, "kernels": None}
    if "--threads" in help_text:
        opts += ["--threads", str(threads)]
        used["threads"] = threads
    if "--kernels" in help_text:
        opts += ["--kernels", "optimized"]
        used["kernels"] = "optimized"
    return opts, used


def kiln_run_once(runtime, program, prompt, decode_tokens, opts, work):
    """One `kiln-runtime generate` process: its decode and prefill speed, load time,
    peak RSS and generated ids."""
    cmd = [runtime, "generate", program, "--prompt-tokens", ",".join(map(str, prompt)),
           "-n", str(decode_tokens + 1), "--ignore-eos", "--print-token-ids"] + opts
    out, err, wall, peak = spawn_measured(cmd, work)
    g = parse_generate(err)
    if g["decode_s"] <= 0 or g["prefill_s"] <= 0:
        raise BenchError(f"{os.path.basename(program)}: too fast to time at generate's "
                         f"0.1 ms resolution: raise --decode-tokens")
    if int(g["generated"]) != decode_tokens + 1 or len(out.split()) != decode_tokens + 1:
        raise BenchError(f"generate made {g['generated']:.0f} tokens, wanted {decode_tokens + 1}")
    # The first token comes from the prefill logits: decode_s covers decode_tokens steps.
    return {"decode_tps": decode_tokens / g["decode_s"],
            "prefill_tps": g["prompt_tokens"] / g["prefill_s"],
            "load_s": max(0.0, wall - g["prefill_s"] - g["decode_s"]),
            "peak_rss_bytes": peak,
            "tokens": [int(t) for t in out.split()]}


def bench_kiln_interleaved(runtime, programs, decode_tokens, repeats, opts, work):
    """programs: {key: (path, prompt)}. One warm-up round, then `repeats` rounds; each
    round runs every program once, in turn, so that every program (format, model) is
    sampled in the same stretches of time: on a shared machine whose speed drifts by
    tens of percent, measuring one program's runs back to back and then the next
    one's skews the ratios between them. Keeps per program the best decode and prefill
    speed, the smallest load time, the largest peak RSS and the ids of the first run."""
    best = {}
    for rnd in range(repeats + 1):  # round 0: warm-up (page cache, CPU frequency)
        for key, (program, prompt) in programs.items():
            log(f"{key}: generate" + (" (warm-up)" if rnd == 0 else f" (round {rnd}/{repeats})"))
            r = kiln_run_once(runtime, program, prompt, decode_tokens, opts, work)
            if rnd == 0:
                continue
            b = best.get(key)
            if b is None:
                best[key] = r
            else:
                b["decode_tps"] = max(b["decode_tps"], r["decode_tps"])
                b["prefill_tps"] = max(b["prefill_tps"], r["prefill_tps"])
                b["load_s"] = min(b["load_s"], r["load_s"])
                b["peak_rss_bytes"] = max(b["peak_rss_bytes"], r["peak_rss_bytes"])
    return best


def openblas_set_threads():
    """A function setting OpenBLAS's own thread count in this process, or None.

    PyTorch (Debian, BLAS_INFO=generic) runs its GEMMs in the system BLAS, which is
    OpenBLAS with its own pthread pool (libopenblas0-pthread): torch.set_num_threads
    does not change it, so a fair sweep sets both."""
    import ctypes
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and "openblas" in parts[-1]:
                paths.add(parts[-1])
    for p in sorted(paths):
        try:
            fn = ctypes.CDLL(p).openblas_set_num_threads
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int]
        return fn
    return None


def parse_torch_settings(text):
    """'1,2' or '1x1,2x1,...' -> [(torch threads, OpenBLAS threads or None)]."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        t, _, b = item.partition("x")
        t, b = int(t), (int(b) if b else None)
        if t < 1 or (b is not None and b < 1):
            raise ValueError(item)
        out.append((t, b))
    return out


def bench_torch(ckpt, prompt, decode_tokens, repeats, settings):
    import torch
    from kiln.models.mobilellm import load_model
    model = load_model(ckpt)
    ids = torch.tensor([prompt], dtype=torch.int64)
    set_blas = openblas_set_threads()
    results = {}
    saved = torch.get_num_threads()
    for nt, nb in settings:
        if nb is not None and set_blas is None:
            log("PyTorch's BLAS is not OpenBLAS: BLAS thread settings are skipped")
            continue
        key = str(nt) if nb is None else f"{nt}x{nb}"
        torch.set_num_threads(nt)
        if nb is not None:
            set_blas(nb)
        best_pre, best_dec, tokens = 0.0, 0.0, None
        with torch.inference_mode():
            for rep in range(repeats + 1):  # the first is a warm-up
                t0 = time.perf_counter()
                # Only the last row's logits, as Kiln's runner (prefill_last).
                logits, past = model.forward_cached(ids, last_only=True)
                t1 = time.perf_counter()
                tok = int(torch.argmax(logits[0, -1]))
                got = [tok]
                t2 = time.perf_counter()
                for _ in range(decode_tokens):
                    logits, past = model.forward_cached(torch.tensor([[tok]]), past)
                    tok = int(torch.argmax(logits[0, -1]))
                    got.append(tok)
                t3 = time.perf_counter()
                if rep == 0:
                    tokens = got
                    continue
                best_pre = max(best_pre, len(prompt) / (t1 - t0))
                best_dec = max(best_dec, decode_tokens / (t3 - t2))
        results[key] = {"decode_tps": best_dec, "prefill_tps": best_pre}
    torch.set_num_threads(saved)
    if not results:
        raise BenchError("no PyTorch thread setting could be measured")
    best_threads = max(results, key=lambda k: results[k]["decode_tps"])
    return {"by_threads": results, "best_threads": best_threads,
            "decode_tps": results[best_threads]["decode_tps"],
            "prefill_tps": max(r["prefill_tps"] for r in results.values()),
            "prefill_best_threads": max(results, key=lambda k: results[k]["prefill_tps"]),
            "tokens": tokens}


# ---------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: only 125M, 16 decode tokens, 1 measured repeat")
    ap.add_argument("--config", choices=["published", "tiny"], default="published",
                    help="published MobileLLM shapes (default) or tiny test shapes")
    ap.add_argument("--models", help="comma-separated: 125M,LS-125M (default both; "
                    "--quick: 125M)")
    ap.add_argument("--build-dir", default=os.environ.get("KILN_BUILD_DIR")
                    or os.path.join(SOURCE_DIR, "build"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.json"))
    ap.add_argument("--work-dir", default=os.path.join(HERE, "results", "work"),
                    help="checkpoints and programs (reused when unchanged)")
    ap.add_argument("--max-seq-len", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, help="default 64 (--quick: 16)")
    ap.add_argument("--repeats", type=int, help="measured rounds after one warm-up round "
                    "(each round runs every Kiln program once; best is kept; PyTorch: "
                    "measured passes per setting; default 4, --quick: 1)")
    ap.add_argument("--threads", type=int, default=2,
                    help="Kiln threads, when generate has --threads (default 2)")
    ap.add_argument("--torch-threads", default="1x1,1x2,2x1,2x2",
                    help="PyTorch settings to try, best reported: T (torch.set_num_threads) "
                    "or TxB (also OpenBLAS threads B); default 1x1,1x2,2x1,2x2")
    ap.add_argument("--bandwidth-mib", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    models = (a.models.split(",") if a.models else (["125M"] if a.quick else ["125M", "LS-125M"]))
    for m in models:
        if m not in ("125M", "LS-125M"):
            ap.error(f"--models: unknown model {m!r} (known: 125M, LS-125M)")
    decode_tokens = a.decode_tokens or (16 if a.quick else 64)
    repeats = a.repeats or (1 if a.quick else 4)
    try:
        torch_threads = parse_torch_settings(a.torch_threads)
    except ValueError as e:
        ap.error(f"--torch-threads: bad setting {e} (want T or TxB, positive integers)")
    if a.prompt_len < 1 or decode_tokens < 1 or repeats < 1 or not torch_threads:
        ap.error("--prompt-len, --decode-tokens, --repeats and --torch-threads must be positive")
    if a.prompt_len + decode_tokens + 1 > a.max_seq_len:
        ap.error(f"--prompt-len + --decode-tokens + 1 = {a.prompt_len + decode_tokens + 1} "
                 f"exceeds --max-seq-len {a.max_seq_len}")

    kiln = os.path.join(a.build_dir, "bin", "kiln")
    runtime = os.path.join(a.build_dir, "bin", "kiln-runtime")
    for b in (kiln, runtime):
        if not os.path.exists(b):
            raise BenchError(f"{b} not found: build it or pass --build-dir")
    sys.path.insert(0, os.path.join(a.build_dir, "python"))
    work = os.path.abspath(a.work_dir)
    os.makedirs(work, exist_ok=True)

    result = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
              "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                       "cpu": cpu_description(),
                       "load_average": list(os.getloadavg())},
              "settings": {"config": a.config, "models": models, "prompt_len": a.prompt_len,
                           "decode_tokens": decode_tokens, "repeats": repeats,
                           "max_seq_len": a.max_seq_len, "int4_group_size": 32,
                           "torch_threads": [t if b is None else f"{t}x{b}"
                                             for t, b in torch_threads]}}

    # Bandwidth first, on a quiet process.
    bw_exe = bandwidth_binary(a.build_dir, work)
    bw = {str(t): measure_bandwidth(bw_exe, t, a.bandwidth_mib) for t in (1, 2)}
    result["bandwidth_gbs"] = bw
    log(f"bandwidth: {bw['1']:.1f} GB/s (1 thread), {bw['2']:.1f} GB/s (2 threads)")

    opts, used = generate_options(runtime, a.threads)
    result["kiln_options"] = used
    kiln_threads = used["threads"] or 1
    # Without --threads the runtime is single-threaded: its roofline is the 1-thread one.
    bw_used = bw["2"] if kiln_threads >= 2 else bw["1"]

    stripped = os.path.join(work, "kiln-runtime.stripped")
    shutil.copyfile(runtime, stripped)
    run(["strip", stripped])
    result["runtime_stripped_bytes"] = os.path.getsize(stripped)
    result["runtime_unstripped_bytes"] = os.path.getsize(runtime)

    import random
    result["models"] = {}
    # Every program first, then the Kiln runs interleaved (bench_kiln_interleaved).
    setup, programs = {}, {}
    for name in models:
        config = model_config(name, a.config == "tiny")
        ckpt = prepare_checkpoint(work, name, config, a.seed)
        rng = random.Random(a.seed)
        prompt = [rng.randrange(3, config["vocab_size"]) for _ in range(a.prompt_len)]
        setup[name] = (config, ckpt, prompt)
        for fmt, fmt_args in FORMATS:
            program = os.path.join(work, f"{name}.{fmt}.kiln")
            export(kiln, ckpt, program, fmt_args, a.max_seq_len)
            programs[f"{name} {fmt}"] = (program, prompt)
    measured = bench_kiln_interleaved(runtime, programs, decode_tokens, repeats, opts, work)
    for name in models:
        config, ckpt, prompt = setup[name]
        entry = {"config": {k: config[k] for k in ("num_hidden_layers", "hidden_size",
                                                   "intermediate_size", "num_attention_heads",
                                                   "num_key_value_heads", "vocab_size")},
                 "layer_sharing": bool(config.get("layer_sharing", False)), "kiln": {}}
        for fmt, _ in FORMATS:
            program = programs[f"{name} {fmt}"][0]
            info = inspect(runtime, program)
            r = measured[f"{name} {fmt}"]
            # Bytes read per decoded token: every weight once, plus the filled part of the
            # KV cache at the mean decode position.
            mean_pos = a.prompt_len + decode_tokens / 2.0
            per_token = info["constant_bytes"] + info["kv_cache_bytes"] * mean_pos / a.max_seq_len
            roof = {t: bw[t] * 1e9 / per_token for t in ("1", "2")}
            r.update(info)
            r["program_bytes"] = info["file_bytes"]
            r["bytes_per_token"] = per_token
            r["roofline_tps"] = {t: roof[t] for t in roof}
            r["roofline_fraction"] = r["decode_tps"] / (bw_used * 1e9 / per_token)
            r["rss_over_program_plus_kv"] = r["peak_rss_bytes"] / (
                info["file_bytes"] + info["kv_cache_bytes"])
            entry["kiln"][fmt] = r
        log(f"{name}: PyTorch eager")
        entry["torch_fp32"] = bench_torch(ckpt, prompt, decode_tokens, repeats, torch_threads)
        k = entry["kiln"]
        entry["ratios"] = {
            "kiln_fp32_vs_torch_decode": k["fp32"]["decode_tps"] / entry["torch_fp32"]["decode_tps"],
            "kiln_fp32_vs_torch_prefill": k["fp32"]["prefill_tps"] / entry["torch_fp32"]["prefill_tps"],
            "int8_vs_fp32_decode": k["int8"]["decode_tps"] / k["fp32"]["decode_tps"],
            "int4_vs_fp32_decode": k["int4"]["decode_tps"] / k["fp32"]["decode_tps"],
        }
        entry["fp32_tokens_match_torch"] = k["fp32"]["tokens"] == entry["torch_fp32"]["tokens"]
        result["models"][name] = entry
    # Bandwidth again at the end: the machine may be shared, so keep the better reading.
    for t in ("1", "2"):
        bw[t] = max(bw[t], measure_bandwidth(bw_exe, int(t), a.bandwidth_mib))
    bw_used = bw["2"] if kiln_threads >= 2 else bw["1"]
    for entry in result["models"].values():
        for r in entry["kiln"].values():
            r["roofline_tps"] = {t: bw[t] * 1e9 / r["bytes_per_token"] for t in ("1", "2")}
            r["roofline_fraction"] = r["decode_tps"] / (bw_used * 1e9 / r["bytes_per_token"])
    result["host"]["load_average_end"] = list(os.getloadavg())
    if "125M" in result["models"] and "LS-125M" in result["models"]:
        result["ls_vs_125M_int4_decode_time"] = (
            result["models"]["125M"]["kiln"]["int4"]["decode_tps"]
            / result["models"]["LS-125M"]["kiln"]["int4"]["decode_tps"])

    for entry in result["models"].values():  # the ids were only needed for the comparison
        for r in list(entry["kiln"].values()) + [entry["torch_fp32"]]:
            r.pop("tokens", None)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, a.out)
    print_table(result)
    print(f"\nJSON: {a.out}")
    return 0


def print_table(res):
    mb = 1e6
    bw = res["bandwidth_gbs"]
    o = res["kiln_options"]
    cpu = res["host"].get("cpu", {})
    if cpu.get("model"):
        caches = ", ".join(f"{k} {v}" for k, v in cpu.get("caches", {}).items())
        print(f"cpu: {cpu['model']} ({', '.join(cpu.get('simd', [])) or 'no AVX2'}; "
              f"caches of cpu0: {caches or 'unknown'})")
    print(f"memory bandwidth: {bw['1']:.1f} GB/s (1 thread), {bw['2']:.1f} GB/s (2 threads); "
          f"kiln generate options: threads={o['threads'] or 'n/a (single-threaded)'}, "
          f"kernels={o['kernels'] or 'n/a'}; load average {res['host']['load_average'][0]:.2f} "
          f"at start, {res['host']['load_average_end'][0]:.2f} at end")
    print(f"kiln-runtime stripped: {res['runtime_stripped_bytes'] / mb:.2f} MB "
          f"(unstripped {res['runtime_unstripped_bytes'] / mb:.2f} MB)")
    s = res["settings"]
    print(f"prompt {s['prompt_len']} tokens, decode {s['decode_tokens']} tokens, best of "
          f"{s['repeats']} after a warm-up, KV cache {s['max_seq_len']} positions\n")
    hdr = (f"{'model':<8} {'engine':<12} {'decode t/s':>10} {'prefill t/s':>11} "
           f"{'roofline':>9} {'frac':>5} {'peak RSS MB':>11} {'load s':>6} "
           f"{'program MB':>10} {'KV MB':>6}")
    print(hdr)
    print("-" * len(hdr))
    for name, e in res["models"].items():
        for fmt, r in e["kiln"].items():
            t = "2" if (o["threads"] or 1) >= 2 else "1"
            print(f"{name:<8} {'kiln ' + fmt:<12} {r['decode_tps']:>10.1f} {r['prefill_tps']:>11.1f} "
                  f"{r['roofline_tps'][t]:>9.1f} {r['roofline_fraction']:>5.2f} "
                  f"{r['peak_rss_bytes'] / mb:>11.1f} {r['load_s']:>6.3f} "
                  f"{r['program_bytes'] / mb:>10.1f} {r['kv_cache_bytes'] / mb:>6.1f}")
        tr = e["torch_fp32"]
        print(f"{name:<8} {'torch fp32':<12} {tr['decode_tps']:>10.1f} {tr['prefill_tps']:>11.1f} "
              f"{'':>9} {'':>5} {'':>11} {'':>6} {'':>10} {'':>6}   "
              f"(torch x OpenBLAS threads: decode {tr['best_threads']}, prefill "
              f"{tr['prefill_best_threads']}; "
              + ", ".join(f"{k} {v['decode_tps']:.1f}/{v['prefill_tps']:.1f}"
                          for k, v in tr["by_threads"].items()) + ")")
        ra = e["ratios"]
        print(f"{'':<8} ratios: kiln fp32/torch decode {ra['kiln_fp32_vs_torch_decode']:.2f}x, "
              f"prefill {ra['kiln_fp32_vs_torch_prefill']:.2f}x; int8/fp32 "
              f"{ra['int8_vs_fp32_decode']:.2f}x; int4/fp32 {ra['int4_vs_fp32_decode']:.2f}x; "
              f"fp32 greedy ids match torch: {e['fp32_tokens_match_torch']}")
    if "ls_vs_125M_int4_decode_time" in res:
        print(f"\nLS-125M / 125M int4 decode time: {res['ls_vs_125M_int4_decode_time']:.2f}x")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(1)
