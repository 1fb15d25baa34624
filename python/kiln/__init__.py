"""Kiln: an ahead-of-time compiler for small language models.

Submodules (imported on demand, so `import kiln` stays light and needs no torch):

- `kiln.torchscript`: export helpers; `kiln.torchscript.save(...)` traces a model
  and saves a TorchScript archive that records its input shapes and dtypes, so
  `kiln compile` produces a statically shaped program without `--input-shape`.
"""

__all__ = ["torchscript"]
