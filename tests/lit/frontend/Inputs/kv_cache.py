"""Archives for kv-cache.test: a module whose buffer on a submodule is a KV cache
written with index_copy_ and read with torch.ops.kiln.cached_attention, in two
traced methods with input specs. Usage: kv_cache.py OUT.pt"""
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..",
                                "python"))
import kiln.ops  # noqa: E402,F401
import kiln.torchscript  # noqa: E402


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("k_cache", torch.zeros(1, 2, 16, 4))
        self.register_buffer("v_cache", torch.zeros(1, 2, 16, 4))

    def forward(self, q, k, v, start_pos):
        positions = start_pos + torch.arange(q.shape[2])
        self.k_cache.index_copy_(2, positions, k)
        self.v_cache.index_copy_(2, positions, v)
        out = torch.ops.kiln.cached_attention(q, self.k_cache, self.v_cache, start_pos, 0.5)
        # A read of the buffer after the write sees it (same state value).
        return out, self.k_cache.sum()


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = Attention()

    def prefill(self, q, k, v, start_pos):
        return self.attn(q, k, v, start_pos)

    def decode(self, q, k, v, start_pos):
        return self.attn(q, k, v, start_pos)


def main():
    model = Model().eval()
    examples = {
        "prefill": (torch.randn(1, 4, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4),
                    torch.tensor([0])),
        "decode": (torch.randn(1, 4, 1, 4), torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4),
                   torch.tensor([3])),
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace_module(model, examples, check_trace=False)
    model.attn.k_cache.zero_()
    model.attn.v_cache.zero_()
    kiln.torchscript.save(traced, sys.argv[1], methods=examples)


if __name__ == "__main__":
    main()
