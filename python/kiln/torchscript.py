"""Saving TorchScript archives that carry their input shapes and dtypes.

A bare `torch.jit.trace` archive records no input shapes or dtypes, so `kiln compile`
has to treat its inputs as unranked tensors of guessed dtypes. `save` writes the
shapes and dtypes of the example inputs into the archive as the extra file
`kiln/input_specs.json`, which `kiln compile` reads when no `--input-shape` is given:

    import kiln.torchscript
    kiln.torchscript.save(model, "model.pt", (tokens,))                  # forward
    kiln.torchscript.save(model, "model.pt", None,
                          methods={"prefill": (chunk,), "decode": (token,)})
    # then: kiln compile model.pt -o model.kiln   (statically shaped)

The file maps each method to its tensor inputs, in order:
    {"forward": [{"shape": [1, 16], "dtype": "i64"}]}
with dtypes f32, i64, i1, i32, f16, bf16 (Kiln's names).
"""
import json
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

INPUT_SPECS_FILE = "kiln/input_specs.json"

_DTYPE_NAMES = {
    torch.float32: "f32",
    torch.int64: "i64",
    torch.bool: "i1",
    torch.int32: "i32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
}

ExampleInputs = Union[torch.Tensor, Sequence[Any]]


def _as_tuple(example_inputs: ExampleInputs) -> Tuple[Any, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise TypeError(f"example inputs must be a tensor or a tuple/list of inputs, "
                    f"got {type(example_inputs).__name__}")


def _tensors(value: Any) -> List[torch.Tensor]:
    """The tensors of an example input in the order tracing flattens them."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for key in value for t in _tensors(value[key])]
    return []  # numbers and None are not tensor inputs


def tensor_spec(tensor: torch.Tensor, where: str = "input") -> Dict[str, Any]:
    """`{"shape": [...], "dtype": "..."}` for one tensor."""
    dtype = _DTYPE_NAMES.get(tensor.dtype)
    if dtype is None:
        supported = ", ".join(str(d).replace("torch.", "") for d in _DTYPE_NAMES)
        raise ValueError(f"{where} has dtype {str(tensor.dtype).replace('torch.', '')}, "
                         f"which Kiln does not support ({supported})")
    return {"shape": [int(d) for d in tensor.shape], "dtype": dtype}


def input_specs(examples: Mapping[str, ExampleInputs]) -> Dict[str, List[Dict[str, Any]]]:
    """The input specs of each method from its example inputs (tensors only, in order)."""
    specs = {}
    for method, inputs in examples.items():
        tensors = _tensors(_as_tuple(inputs))
        specs[method] = [tensor_spec(t, f"{method} tensor input {i}")
                         for i, t in enumerate(tensors)]
    return specs


def input_specs_json(examples: Mapping[str, ExampleInputs]) -> str:
    """The contents of kiln/input_specs.json for these example inputs."""
    return json.dumps(input_specs(examples), sort_keys=True)


def _trace(module: torch.nn.Module, examples: Dict[str, Tuple[Any, ...]],
           check_trace: bool) -> torch.jit.ScriptModule:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if list(examples) == ["forward"]:
            return torch.jit.trace(module, examples["forward"], check_trace=check_trace)
        return torch.jit.trace_module(module, examples, check_trace=check_trace)


def save(module_or_traced: Union[torch.nn.Module, torch.jit.ScriptModule], path: str,
         example_inputs: Optional[ExampleInputs] = None,
         methods: Optional[Mapping[str, ExampleInputs]] = None,
         check_trace: bool = True) -> torch.jit.ScriptModule:
    """Traces (if needed) and saves a model with its input specs; returns the archive's module.

    module_or_traced: an `nn.Module` (traced here: `torch.jit.trace` for `forward`
        alone, `torch.jit.trace_module` for several methods) or a module already
        traced or scripted (saved as is; the examples then only describe its inputs).
    example_inputs: the inputs of `forward` (a tensor or a tuple), or None.
    methods: example inputs of further methods, e.g. {"prefill": (chunk,),
        "decode": (token,)}. At least one of example_inputs/methods is required.
    check_trace: passed to torch.jit.trace / trace_module.
    """
    examples: Dict[str, Tuple[Any, ...]] = {}
    if example_inputs is not None:
        examples["forward"] = _as_tuple(example_inputs)
    for name, inputs in (methods or {}).items():
        if name in examples:
            raise ValueError(f"example inputs for method '{name}' given twice")
        examples[name] = _as_tuple(inputs)
    if not examples:
        raise ValueError("no example inputs: give example_inputs (for forward) or methods")

    if isinstance(module_or_traced, torch.jit.ScriptModule):
        scripted = module_or_traced
        for name in examples:
            if not hasattr(scripted, name):
                raise ValueError(f"the module has no method '{name}'")
    elif isinstance(module_or_traced, torch.nn.Module):
        scripted = _trace(module_or_traced, examples, check_trace)
    else:
        raise TypeError(f"expected an nn.Module or a ScriptModule, "
                        f"got {type(module_or_traced).__name__}")
    scripted.save(path, _extra_files={INPUT_SPECS_FILE: input_specs_json(examples)})
    return scripted
