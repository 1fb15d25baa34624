"""PyTorch-side checks of the test models themselves (no Kiln binary needed):
each traced graph contains the aten ops its case claims to test, tracing is faithful
(traced == eager), and the decoders' traces generalise to other sequence lengths,
which the parity tests rely on when they run one program at several lengths.
"""
import numpy as np
import pytest
import torch

import harness
import models


def graph_kinds(traced):
    return {n.kind() for n in traced.inlined_graph.nodes()}


@pytest.mark.parametrize("case", models.OP_CASES, ids=lambda c: c.name)
def test_op_case_traces_the_op_it_tests(case):
    inputs = case.inputs()
    traced = harness.trace(case.module, inputs)
    kinds = graph_kinds(traced)
    missing = [op for op in case.aten if op not in kinds]
    assert not missing, f"[{case.name}] traced graph lacks {missing}; it has {sorted(kinds)}"
    harness.assert_outputs_match(case.name + " (traced vs eager)",
                                 harness.eager(traced, inputs), harness.eager(case.module, inputs),
                                 tol=0.0)


def test_op_case_names_unique():
    names = [c.name for c in models.OP_CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name,make,tokens,aten", [
    ("llama", models.make_llama, models.llama_tokens,
     ("aten::embedding", "aten::rsqrt", "aten::arange", "aten::outer", "aten::cos", "aten::sin",
      "aten::repeat_interleave", "aten::triu", "aten::masked_fill", "aten::softmax", "aten::silu",
      "aten::linear", "aten::matmul", "aten::cat")),
    ("gpt2", models.make_gpt2, models.gpt2_tokens,
     ("aten::embedding", "aten::arange", "aten::layer_norm", "aten::split", "aten::chunk",
      "aten::masked_fill", "aten::eq", "aten::slice", "aten::gelu", "aten::softmax", "aten::matmul")),
])
def test_decoder_trace_generalises_over_length(name, make, tokens, aten):
    model = make()
    traced = harness.trace(model, [tokens(8)])
    kinds = graph_kinds(traced)
    assert not [op for op in aten if op not in kinds], f"[{name}] graph lacks {set(aten) - kinds}"
    for seq_len, batch in ((8, 1), (5, 1), (1, 1), (3, 2)):
        inputs = [tokens(seq_len, batch, seed=seq_len)]
        harness.assert_outputs_match(f"{name} T={seq_len} B={batch} (traced vs eager)",
                                     harness.eager(traced, inputs), harness.eager(model, inputs), tol=0.0)


def test_llama_weights_are_tied_and_norms_random():
    model = models.make_llama()
    sd = model.state_dict()
    assert "embed.weight" in sd
    # The logits use the embedding matrix: there is no separate output weight.
    assert not any(k.startswith("output") or k.startswith("lm_head") for k in sd)
    assert not torch.allclose(sd["norm.weight"], torch.ones_like(sd["norm.weight"]))


def test_two_methods_trace():
    m = models.make_two_methods()
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    traced = torch.jit.trace_module(m, {"forward": (torch.from_numpy(x),),
                                        "other": (torch.from_numpy(x), torch.from_numpy(y))})
    harness.assert_outputs_match("two_methods.other", harness.eager(traced.other, [x, y]),
                                 harness.eager(m.other, [x, y]), tol=0.0)


def test_rfft_line_is_found():
    line = models.rfft_source_line()
    traced = harness.trace(models.UsesRfft(), [np.zeros((2, 8), np.float32)])
    fft_nodes = [n for n in traced.inlined_graph.nodes() if n.kind() == "aten::fft_rfft"]
    assert fft_nodes, "trace lacks aten::fft_rfft"
    # The trace records the call's file:line, which test_errors expects in the diagnostic.
    assert f"models.py:{line}:" in str(fft_nodes[0]), str(fft_nodes[0])
