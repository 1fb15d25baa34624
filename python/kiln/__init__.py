"""Kiln: an ahead-of-time compiler for small language models.

    import kiln
    kiln.compile(model, "m.kiln", example_inputs=(x,))   # or a TorchScript file path
    prog = kiln.load("m.kiln")
    prog.methods, prog.method_info("forward"), prog.metadata
    outputs = prog.run("forward", [x_numpy])            # numpy in, numpy out
    llm = kiln.load("llm.kiln")                         # from kiln.export_hf / kiln export-hf
    print(llm.generate("Once upon a time", max_new_tokens=32).text)

`kiln.load` and `kiln.compile` need the extension modules built into
<build>/python/kiln/ (`PYTHONPATH=build/python /usr/bin/python3`). Submodules are
imported on demand, so `import kiln` stays light and needs no torch:

- `kiln.torchscript`: export helpers; `kiln.torchscript.save(...)` traces a model
  and saves a TorchScript archive that records its input shapes and dtypes, so
  `kiln compile` produces a statically shaped program without `--input-shape`.
- `kiln.ops`: the `kiln::cached_attention` custom op for PyTorch (docs/llm.md).
- `kiln.export_hf`, `kiln.models`, `kiln.checkpoint`: MobileLLM export.
"""
import os as _os
import sys as _sys
import types as _types


def _find_extension_modules():
    """Imported from the source tree (PYTHONPATH=python), the package also looks for
    its extension modules in $KILN_BUILD_DIR/python/kiln, then build/python/kiln."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    candidates = []
    if _os.environ.get("KILN_BUILD_DIR"):
        candidates.append(_os.path.join(_os.environ["KILN_BUILD_DIR"], "python", "kiln"))
    candidates.append(_os.path.join(_os.path.dirname(_os.path.dirname(here)), "build", "python",
                                    "kiln"))
    for path in candidates:
        if _os.path.isdir(path) and _os.path.realpath(path) != _os.path.realpath(here) \
                and path not in __path__:
            __path__.append(path)


_find_extension_modules()

from kiln._api import (CompileError, GenerationResult, Program, compile, export_hf,  # noqa: F401
                       load)

__all__ = ["CompileError", "GenerationResult", "Program", "compile", "export_hf", "load",
           "torchscript"]


class _KilnPackage(_types.ModuleType):
    """Keeps `kiln.export_hf` the function: importing the submodule kiln.export_hf
    (the exporter) would otherwise replace the package attribute with the module.
    `from kiln.export_hf import export` and `python3 -m kiln.export_hf` still work."""

    def __setattr__(self, name, value):
        if name == "export_hf" and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _KilnPackage
