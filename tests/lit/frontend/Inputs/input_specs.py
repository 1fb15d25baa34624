"""Archives with input specs (the extra file kiln/input_specs.json) for the
front-end lit tests.

usage: input_specs.py NAME OUT.pt

NAME:
  helper_mlp       the MLP of models.py saved by kiln.torchscript.save with a
                   float32 [3, 16] example (needs PYTHONPATH=<repo>/python)
  helper_methods   prefill/decode saved by kiln.torchscript.save(methods=...)
  bad_json         a traced MLP whose kiln/input_specs.json is not JSON
  bad_dtype        ... whose spec names an unknown dtype
  wrong_count      ... whose spec describes two inputs of a one-input forward
  unknown_method   ... whose spec names a method the archive does not have
  scalar_arg       a bare trace of x * t + t.long() with a 0-d tensor t
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

SPECS = "kiln/input_specs.json"


class PrefillDecode(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(32, 8)
        self.proj = nn.Linear(8, 32, bias=False)

    def prefill(self, tokens):
        pos = torch.arange(tokens.size(1)).unsqueeze(0)
        return self.proj(self.embed(tokens) + self.embed(pos))

    def decode(self, token, pos):
        return self.proj(self.embed(token) + self.embed(pos))[:, -1]


class ScalarArg(nn.Module):
    def forward(self, x, t):
        return x * t + t.to(torch.int64)


def traced_mlp():
    return torch.jit.trace(models.MLP().eval(), torch.randn(2, 16))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    name, path = sys.argv[1], sys.argv[2]
    if name == "helper_mlp":
        import kiln.torchscript
        kiln.torchscript.save(models.MLP().eval(), path, (torch.randn(3, 16),))
    elif name == "helper_methods":
        import kiln.torchscript
        tokens = torch.randint(0, 32, (1, 6))
        kiln.torchscript.save(PrefillDecode().eval(), path, None, methods={
            "prefill": (tokens,), "decode": (tokens[:, :1], torch.tensor([[6]]))})
    elif name == "scalar_arg":
        torch.jit.trace(ScalarArg(), (torch.randn(2, 3), torch.tensor(2.5))).save(path)
    else:
        contents = {
            "bad_json": '{"forward": [{"shape": [2, 16]',
            "bad_dtype": '{"forward": [{"shape": [2, 16], "dtype": "f64"}]}',
            "wrong_count": '{"forward": [{"shape": [2, 16]}, {"shape": [2]}]}',
            "unknown_method": '{"decode": [{"shape": [2, 16]}]}',
        }[name]
        traced_mlp().save(path, _extra_files={SPECS: contents})


if __name__ == "__main__":
    main()
