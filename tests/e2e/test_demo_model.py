"""The README main command's default model (examples/mobilellm/demo-model, trained
here on the `fortunes` package): it loads in the published layout, exports with
`kiln export-hf --verify`, and `kiln generate` writes the same English text as eager
PyTorch greedy decoding with a KV cache.

The prompt is tokenized independently by Python's sentencepiece module (not by the
runtime), so the check also covers the runtime's tokenizer on this model.
Tolerances: prefill logits relative max error <= 1e-4 (checked by --verify);
greedy tokens identical, except at a step where eager's top-2 margin < 1e-4 (a tie).
"""
import json
import os
import re
import sys

import pytest
import torch

import harness

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))

from kiln.models import load_model  # noqa: E402

DEMO = os.path.join(harness.SOURCE_DIR, "examples", "mobilellm", "demo-model")
PROMPT = "The meaning of life is"
TIE_MARGIN = 1e-4


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    out, report = str(work / "demo.kiln"), str(work / "report.json")
    proc = harness.run_tool([harness.binary("kiln"), "export-hf", DEMO, "-o", out,
                             "--verify", "--report", report], timeout=600)
    assert proc.returncode == 0, "export-hf --verify of the demo model failed:\n" + harness.describe(proc)
    with open(report) as f:
        return out, json.load(f)


def test_demo_checkpoint_is_small_fp16_in_published_layout():
    with open(os.path.join(DEMO, "config.json")) as f:
        config = json.load(f)
    assert config["model_type"] == "mobilellm" and config["share_embedding"] is True
    sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))
    from kiln.checkpoint import read_safetensors
    tensors = read_safetensors(os.path.join(DEMO, "model.safetensors"))
    assert "lm_head.weight" not in tensors, "tied embeddings: no lm_head.weight is stored"
    assert all(t.dtype == torch.float16 for t in tensors.values())
    total = sum(os.path.getsize(os.path.join(DEMO, n)) for n in os.listdir(DEMO))
    assert total < 10 * 1024 * 1024, f"demo model directory is {total} bytes (keep it < 10 MB)"


def test_export_verify_report(program):
    _, report = program
    verify = report["verify"]
    assert verify["status"] == "ok", verify
    assert verify["prefill"]["rel_max_err"] <= 1e-4, verify["prefill"]
    assert all(g["status"] == "identical" for g in verify["greedy"]), verify["greedy"]
    assert report["family"] == "mobilellm" and report["parameters"] == 2_370_176, report
    assert report["file_bytes"] > 0 and report["max_seq_len"] == 512, report


def test_generate_matches_eager_greedy(program):
    spm = pytest.importorskip("sentencepiece")
    out, _ = program
    sp = spm.SentencePieceProcessor(model_file=os.path.join(DEMO, "tokenizer.model"))
    prompt_ids = [1] + sp.encode(PROMPT)  # add_bos
    n = 24
    proc = harness.run_tool([harness.binary("kiln"), "generate", out, "--prompt", PROMPT,
                             "-n", str(n), "--print-token-ids", "--ignore-eos"])
    assert proc.returncode == 0, harness.describe(proc)
    got = [int(t) for t in proc.stdout.split()]
    model = load_model(DEMO).eval()
    with torch.no_grad():
        want, margins, _ = model.generate_greedy(prompt_ids, n)
    assert len(got) == n, proc.stdout
    for step, (g, w, m) in enumerate(zip(got, want, margins)):
        if g != w:
            assert m < TIE_MARGIN, (f"demo model greedy token {step}: kiln {g}, eager {w} "
                                    f"(eager top-2 margin {m:.3g} >= {TIE_MARGIN})")
            break  # after a tie the continuations may differ legitimately


def test_generate_prints_english_text(program):
    out, _ = program
    proc = harness.run_tool([harness.binary("kiln"), "generate", out, "--prompt", PROMPT, "-n", "32"])
    assert proc.returncode == 0, harness.describe(proc)
    text = proc.stdout.strip()
    assert text.startswith(PROMPT), text
    continuation = text[len(PROMPT):]
    words = re.findall(r"[A-Za-z]+", continuation)
    assert len(words) >= 4, f"expected English words after the prompt, got {continuation!r}"
    assert "decode:" in proc.stderr and "tokens/s" in proc.stderr, proc.stderr
