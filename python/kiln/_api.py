"""The Python API behind `kiln.load`, `kiln.compile` and `kiln.export_hf`.

`kiln.load` uses the extension module `kiln._kiln` (the C++ runtime, no LibTorch);
`kiln.compile` uses `kiln._compiler` (the same code as `kiln compile`, which loads
LibTorch and MLIR) and imports torch only when given a module rather than a file.
Both extension modules are built into <build>/python/kiln/ by the normal build:

    PYTHONPATH=build/python /usr/bin/python3 -c "import kiln; print(kiln.load('m.kiln').methods)"
"""
import importlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

__all__ = ["CompileError", "GenerationResult", "Program", "compile", "export_hf", "load"]


def _native(name: str):
    """Imports kiln._kiln / kiln._compiler with a hint when the build is missing."""
    try:
        return importlib.import_module(f"kiln.{name}")
    except ImportError as e:
        here = os.path.dirname(os.path.abspath(__file__))
        raise ImportError(
            f"the Kiln extension module kiln.{name} is not available ({e}); build it "
            f"(ninja -C build kiln_python) and put <build>/python first on PYTHONPATH, "
            f"not the source tree's python/ (this kiln package is {here})") from e


class CompileError(RuntimeError):
    """`kiln.compile` failed; `diagnostics` holds the compiler's messages (also in str())."""

    def __init__(self, message: str, diagnostics: str = ""):
        super().__init__(message)
        self.diagnostics = diagnostics


@dataclass
class GenerationResult:
    """What `Program.generate` returns. Also readable as a dict: `result["tokens"]`."""
    tokens: List[int]                 # generated ids (not the prompt), EOS included if hit
    text: str                         # the generated text ("" without a tokenizer)
    prompt_tokens: List[int]          # the prompt as ids (BOS included when added)
    prefill_seconds: float
    decode_seconds: float
    stop_reason: str                  # "eos", "max_new_tokens", "cache_full" or "callback"
    stats: Dict[str, Any] = field(default_factory=dict)

    @property
    def prefill_tokens_per_second(self) -> float:
        return len(self.prompt_tokens) / self.prefill_seconds if self.prefill_seconds > 0 else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        return len(self.tokens) / self.decode_seconds if self.decode_seconds > 0 else 0.0

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def keys(self) -> List[str]:
        return ["tokens", "text", "prompt_tokens", "prefill_seconds", "decode_seconds",
                "stop_reason", "stats", "prefill_tokens_per_second", "decode_tokens_per_second"]


class Program:
    """A loaded Kiln program (`kiln.load(path)`).

    methods: method names; method_info(name): inputs/outputs as dicts with name,
    dtype ("f32", "i64", ... or None) and shape (a tuple, None for a dynamic dim;
    None when the rank is unknown); metadata: dict of strings; run(method, inputs):
    numpy arrays in, a list of numpy arrays out. LLM programs (kiln export-hf) also
    generate text: generate(...), encode(text), decode(ids), prompt_logits(ids).
    """

    def __init__(self, native):
        self._native = native

    def __repr__(self) -> str:
        return f"<kiln.Program {self.path!r} methods={self.methods}>"

    @property
    def path(self) -> str:
        return self._native.path

    @property
    def num_threads(self) -> int:
        """Threads the kernels use (kiln.load(threads=...))."""
        return self._native.num_threads

    @property
    def methods(self) -> List[str]:
        return list(self._native.methods)

    def method_info(self, name: str) -> Dict[str, Any]:
        return self._native.method_info(name)

    @property
    def metadata(self) -> Dict[str, str]:
        return dict(self._native.metadata)

    @property
    def asset_names(self) -> List[str]:
        return list(self._native.asset_names)

    def asset(self, name: str) -> bytes:
        return self._native.asset(name)

    def run(self, method: str, inputs) -> list:
        """Runs `method` on numpy arrays (a list/tuple, or one array). Inputs are
        checked against the declared dtypes/shapes: a mismatch raises ValueError
        with the runtime's message."""
        import numpy as np
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        return self._native.run(method, list(inputs))

    def __call__(self, *inputs):
        """`program(a, b)` runs `forward` (or the only method)."""
        names = self.methods
        method = "forward" if "forward" in names or len(names) != 1 else names[0]
        return self.run(method, list(inputs))

    # ---- state (KV cache)
    def reset_state(self) -> None:
        """Zeroes every program state (the KV cache of an LLM program)."""
        self._native.reset_state()

    @property
    def state_names(self) -> List[str]:
        return list(self._native.state_names)

    def state(self, name: str):
        """A copy of a state buffer as a numpy array."""
        return self._native.state(name)

    # ---- LLM programs
    @property
    def is_llm(self) -> bool:
        return self._native.is_llm

    @property
    def llm_info(self) -> Dict[str, Any]:
        """max_seq_len, prefill_chunk, vocab_size, eos_token_ids, tokenizer kind."""
        return self._native.llm_info()

    def encode(self, text: str) -> List[int]:
        """The prompt ids of `text` (BOS first when the program says so)."""
        return list(self._native.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self._native.decode(list(ids)).decode("utf-8", "replace")

    def prompt_logits(self, prompt_tokens: Sequence[int]):
        """Resets the cache, prefills the prompt, returns f32 logits [n, V]."""
        return self._native.prompt_logits(list(prompt_tokens))

    def generate(self, prompt: Optional[str] = None, prompt_tokens: Optional[Sequence[int]] = None,
                 max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, ignore_eos: bool = False,
                 stream: Optional[Callable[[int, str], Optional[bool]]] = None) -> GenerationResult:
        """Generates up to `max_new_tokens` after a text `prompt` or `prompt_tokens`.

        Greedy when temperature is 0; otherwise samples (nucleus top_p) with `seed`.
        `stream(token_id, text_piece)` is called for every generated token (pieces
        join to the generated text); returning False stops generation.
        """
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        ids = None if prompt_tokens is None else [int(t) for t in prompt_tokens]
        r = self._native.generate(prompt, ids, int(max_new_tokens), float(temperature),
                                  float(top_p), int(seed), bool(ignore_eos), stream)
        tokens = list(r["tokens"])
        if r["stopped_at_eos"]:
            reason = "eos"
        elif r["stopped_at_cache_end"]:
            reason = "cache_full"
        elif len(tokens) >= max_new_tokens:
            reason = "max_new_tokens"
        else:
            reason = "callback"
        stats = {k: r[k] for k in ("prefill_seconds", "decode_seconds", "prompt_token_count",
                                   "generated_token_count")}
        result = GenerationResult(tokens=tokens, text=r["text"].decode("utf-8", "replace"),
                                  prompt_tokens=list(r["prompt_tokens"]),
                                  prefill_seconds=r["prefill_seconds"],
                                  decode_seconds=r["decode_seconds"], stop_reason=reason,
                                  stats=stats)
        stats["prefill_tokens_per_second"] = result.prefill_tokens_per_second
        stats["decode_tokens_per_second"] = result.decode_tokens_per_second
        return result


def load(path: Union[str, "os.PathLike[str]"], verify_hashes: bool = True,
         threads: Optional[int] = None, kernels: str = "optimized") -> Program:
    """Loads (mmaps and verifies) a program file. A missing file raises OSError,
    a corrupt one RuntimeError, both with the runtime's message.

    threads: how many threads the kernels use (1 to 256; None = the machine's
    physical cores). kernels: "optimized" (default) or "portable" (the portable
    scalar kernels only). Bad values raise ValueError."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
            raise ValueError(f"threads must be an int from 1 to 256 or None, got {threads!r}")
    if kernels not in ("optimized", "portable"):
        raise ValueError(f"kernels must be 'optimized' or 'portable', got {kernels!r}")
    native = _native("_kiln")
    return Program(native.Program(os.fspath(path), bool(verify_hashes),
                                  0 if threads is None else threads, kernels == "portable"))


def _compile_args(source: str, output: str, quantize: str, group_size: int,
                  input_shapes: Optional[Sequence[str]], fuse: bool, dedup_weights: bool, plan_memory: bool,
                  metadata: Optional[Mapping[str, str]], assets: Optional[Mapping[str, str]],
                  verbose: bool, extra_args: Sequence[str]) -> List[str]:
    args = [source, "-o", output, "--quantize", str(quantize), "--group-size", str(int(group_size))]
    for spec in input_shapes or ():
        args += ["--input-shape", str(spec)]
    if not fuse:
        args.append("--no-fuse")
    if not dedup_weights:
        args.append("--no-dedup-weights")
    if not plan_memory:
        args.append("--no-plan-memory")
    for key, value in (metadata or {}).items():
        args += ["--metadata", f"{key}={value}"]
    for name, path in (assets or {}).items():
        args += ["--asset", f"{name}={os.fspath(path)}"]
    if not verbose:
        args.append("-q")
    return args + [str(a) for a in extra_args]


def compile(model_or_path, output: Union[str, "os.PathLike[str]"], example_inputs=None,
            quantize: str = "none", group_size: int = 32, *,
            methods: Optional[Mapping[str, Any]] = None,
            input_shapes: Optional[Sequence[str]] = None, fuse: bool = True,
            dedup_weights: bool = True, plan_memory: bool = True,
            metadata: Optional[Mapping[str, str]] = None,
            assets: Optional[Mapping[str, str]] = None, verbose: bool = False,
            extra_args: Sequence[str] = ()) -> str:
    """Compiles a model into the program file `output` (the same code as `kiln compile`).

    model_or_path: a TorchScript archive path, or a torch.nn.Module / traced or
        scripted module. A module is saved with kiln.torchscript.save (traced
        if needed) to a temporary archive; `example_inputs` (forward) and/or
        `methods` ({"prefill": (tokens, pos), ...}) give the inputs whose shapes
        and dtypes make the program statically shaped.
    quantize / group_size: "none" | "int8" | "int4", int4 group size (32, 64, 128).
    input_shapes: `--input-shape` specs ("1x16:i64", "decode:1x1:i64").
    metadata / assets: `--metadata KEY=VALUE` / `--asset NAME=PATH`.
    verbose: print the compiler's progress to stderr.
    Returns the output path. A failure raises kiln.CompileError whose message holds
    the compiler's diagnostics (operator, file:line); no output file is left.
    """
    output = os.fspath(output)
    compiler = _native("_compiler")
    tmpdir = None
    try:
        if isinstance(model_or_path, (str, bytes, os.PathLike)):
            source = os.fsdecode(model_or_path)
            if example_inputs is not None or methods:
                raise ValueError("example_inputs/methods describe a module to trace; a "
                                 "TorchScript file carries its own (use input_shapes)")
        else:
            import torch  # only for modules: `import kiln` never imports torch
            import kiln.torchscript as kts
            if not isinstance(model_or_path, torch.nn.Module):
                raise TypeError(f"kiln.compile takes a TorchScript file path or a torch.nn.Module, "
                                f"got {type(model_or_path).__name__}")
            if example_inputs is None and not methods:
                if not isinstance(model_or_path, torch.jit.ScriptModule):
                    raise ValueError("kiln.compile needs example_inputs (or methods) to trace "
                                     "an nn.Module")
            tmpdir = tempfile.mkdtemp(prefix="kiln-compile-")
            source = os.path.join(tmpdir, "model.pt")
            if example_inputs is None and not methods:
                model_or_path.save(source)  # scripted/traced, no input specs
            else:
                kts.save(model_or_path, source, example_inputs, methods=methods)
        args = _compile_args(source, output, quantize, group_size, input_shapes, fuse, dedup_weights, plan_memory, metadata, assets, verbose,
                             extra_args)
        code, text = compiler.compile_command(args)
    finally:
        if tmpdir:
            import shutil
            shutil.rmtree(tmpdir, ignore_errors=True)
    if code != 0:
        text = text.strip()
        raise CompileError(f"kiln.compile failed:\n{text}" if text else
                           f"kiln.compile failed (exit code {code})", text)
    if verbose and text:
        sys.stderr.write(text)
        sys.stderr.flush()
    return output


def export_hf(checkpoint_dir: Union[str, "os.PathLike[str]"], output: Union[str, "os.PathLike[str]"],
              **options) -> Dict[str, Any]:
    """`kiln export-hf` from Python: a Hugging Face MobileLLM checkpoint directory to
    a program with prefill and decode. Options as kiln.export_hf.export: quantize,
    group_size, max_seq_len, prefill_chunk, do_verify, verify_tokens, report_path.
    Returns the export report (sizes, timings, parity figures with do_verify).
    Failures raise kiln.export_hf.ExportError (a RuntimeError)."""
    try:
        module = importlib.import_module("kiln.export_hf")
    except ImportError as e:
        raise ImportError(f"kiln.export_hf (the MobileLLM exporter) cannot be imported: {e}") from e
    if not hasattr(module, "export"):
        raise ImportError("kiln.export_hf has no export() function")
    # The exporter runs the `kiln` binary: the one of the build these extension
    # modules come from (<build>/bin/kiln for <build>/python/kiln/) unless KILN_BIN
    # says otherwise.
    native = _native("_kiln")
    built = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(native.__file__)))), "bin", "kiln")
    set_bin = "KILN_BIN" not in os.environ and os.path.isfile(built)
    if set_bin:
        os.environ["KILN_BIN"] = built
    try:
        return module.export(os.fspath(checkpoint_dir), os.fspath(output), **options)
    finally:
        if set_bin:
            os.environ.pop("KILN_BIN", None)
