//===- KilnOps.td - kiln dialect ops ------------------------*- tablegen -*-===//
//
// Ops of the kiln dialect. docs/dialect.md is the contract (names, operand
// order, attribute names); this file implements it. Decisions:
//
// * Types. Operands and results are builtin tensors of any shape: static,
//   with dynamic dims, or unranked. A bare traced TorchScript archive carries
//   no input shapes, so the runtime computes shapes when it runs. Verifiers
//   check every invariant that the known part of the types allows (ranks,
//   static dims, element types) and leave the rest to the kernels.
// * Scalars are 0-d tensors. Traced graphs compute sizes with aten::size,
//   prim::NumToTensor and integer arithmetic; keeping them as `tensor<i64>`
//   lets the same ops (binary, stack, ...) and the same runtime values carry
//   them, instead of a parallel scalar type system. Shape lists are 1-d i64
//   tensors (`kiln.stack` of 0-d sizes, or a `kiln.constant`).
// * Element types follow PyTorch: f32, i64, i1 (bool), i32, f16, bf16. The
//   verifiers check the documented result element type of each op (binary
//   promotion, i1 compares, i64 sizes and argmax, casts to `dtype`).
// * Dims follow PyTorch: negative dims count from the end. When the operand
//   is ranked the verifier checks that a dim is in [-rank, rank).
// * Assembly: `kiln.<op> ["fn"] operands (attr-name value)* attr-dict :
//   (operand types) -> result types`. A string `fn` selector leads as a bare
//   string; every other attribute is printed as its name followed by its
//   value; an optional operand is introduced by its name (or a comma when it
//   is the only optional one, as in `linear`). Only `constant` differs:
//   `kiln.constant dense<...> : tensor<...>`.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_KILNOPS_TD
#define KILN_DIALECT_KILNOPS_TD

include "kiln/Dialect/KilnDialect.td"
include "kiln/Dialect/KilnTypes.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Every kiln op is pure and has a verifier.
class Kiln_PureOp<string mnemonic, list<Trait> traits = []>
    : Kiln_Op<mnemonic, !listconcat([Pure], traits)> {
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Constants
//===----------------------------------------------------------------------===//

def Kiln_ConstantOp : Kiln_PureOp<"constant",
    [ConstantLike, AllTypesMatch<["value", "result"]>]> {
  let summary = "constant tensor";
  let description = [{
    A constant tensor. `value` is a `DenseElementsAttr` or a
    `DenseResourceElementsAttr` (weights imported without copying); the
    result type is the value's type. Becomes a constant segment of the
    program.

    ```mlir
    %c = kiln.constant dense<[1.0, 2.0]> : tensor<2xf32>
    %w = kiln.constant dense_resource<w0> : tensor<16x8xf32>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
  let builders = [
    // The result type is the value's type.
    OpBuilder<(ins "::mlir::ElementsAttr":$value), [{
      build($_builder, $_state, value.getShapedType(), value);
    }]>
  ];
}

def Kiln_QConstantOp : Kiln_PureOp<"qconstant"> {
  let summary = "constant quantized weight";
  let description = [{
    A quantized weight (`!kiln.qweight`), made by `kiln-quantize` from an f32
    `kiln.constant`. `data` holds the integers (i8 `[out, in]`, or for i4
    `[out, in/2]` i8 bytes with element 2k in the low nibble and 2k+1 in the
    high nibble); `scales` holds `[out, in/group]` f16 scales. Both are
    `DenseElementsAttr` or `DenseResourceElementsAttr`. The weight reads as
    `w[r][c] = q[r][c] * scales[r][c / group]`. Becomes one program Value with
    two segments (docs/program-format.md). Only `kiln.linear` (weight) and
    `kiln.embedding` (table) take it.

    ```mlir
    %w = kiln.qconstant dense_resource<w0_q> : tensor<16x8xi8>
        scales dense_resource<w0_s> : tensor<16x1xf16> : !kiln.qweight<i8, [16, 8]>
    ```
  }];
  let arguments = (ins ElementsAttr:$data, ElementsAttr:$scales);
  let results = (outs Kiln_QWeightType:$result);
  let assemblyFormat = "$data `scales` $scales attr-dict `:` qualified(type($result))";
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

def Kiln_UnaryOp : Kiln_PureOp<"unary"> {
  let summary = "elementwise unary function";
  let description = [{
    Applies `fn` elementwise. `fn` is one of `neg abs exp log sqrt rsqrt
    reciprocal sin cos tanh sigmoid relu silu gelu gelu_tanh erf logical_not
    floor ceil round`. The result has the input's shape and element type,
    except: float-only functions (`exp log sqrt rsqrt reciprocal sin cos tanh
    sigmoid silu gelu gelu_tanh erf`) on an integer or bool input give f32,
    and `logical_not` gives i1.

    ```mlir
    %y = kiln.unary "silu" %x : (tensor<4xf32>) -> tensor<4xf32>
    %r = kiln.unary "sqrt" %n : (tensor<i64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, StrAttr:$fn);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$fn $x attr-dict `:` functional-type(operands, results)";
}

def Kiln_BinaryOp : Kiln_PureOp<"binary"> {
  let summary = "elementwise binary function with broadcasting";
  let description = [{
    Applies `fn` elementwise with PyTorch broadcasting. `fn` is one of `add
    sub mul div floor_div trunc_div remainder pow maximum minimum`. `div` is
    true division (integer inputs give f32); `floor_div` rounds toward -inf,
    `trunc_div` toward zero.

    The result element type is PyTorch's promotion of the operand types
    (bool < integer < float; two integers give the wider one; f32 wins over
    f16/bf16; f16 with bf16 gives f32). As in PyTorch a 0-d operand only
    decides the result type when its category is higher than the other
    operand's (`tensor<4xf16> * tensor<f32>` is f16).

    Integer `add`, `sub` and `mul` of constants of the result's type fold
    (size arithmetic of static programs; wraps like PyTorch's int64).

    ```mlir
    %z = kiln.binary "add" %a, %b : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
    %q = kiln.binary "div" %i, %j : (tensor<i64>, tensor<i64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins AnyTensor:$a, AnyTensor:$b, StrAttr:$fn);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$fn $a `,` $b attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Kiln_CompareOp : Kiln_PureOp<"compare"> {
  let summary = "elementwise comparison or logical function, result i1";
  let description = [{
    Applies `fn` elementwise with broadcasting; the result element type is
    i1. `fn` is one of `eq ne lt le gt ge logical_and logical_or
    logical_xor`.

    ```mlir
    %m = kiln.compare "lt" %a, %b : (tensor<4xi64>, tensor<i64>) -> tensor<4xi1>
    ```
  }];
  let arguments = (ins AnyTensor:$a, AnyTensor:$b, StrAttr:$fn);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$fn $a `,` $b attr-dict `:` functional-type(operands, results)";
}

def Kiln_WhereOp : Kiln_PureOp<"where"> {
  let summary = "elementwise select with broadcasting";
  let description = [{
    `torch.where(cond, a, b)`: `cond` has element type i1; the result element
    type is the promotion of `a` and `b` (as for `binary`). `masked_fill(x,
    m, v)` is `where(m, v, x)`.

    ```mlir
    %y = kiln.where %m, %v, %x : (tensor<4x4xi1>, tensor<f32>, tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$cond, AnyTensor:$a, AnyTensor:$b);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$cond `,` $a `,` $b attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_CastOp : Kiln_PureOp<"cast"> {
  let summary = "element type conversion";
  let description = [{
    `x.to(dtype)`. `dtype` is one of `f32 i64 i1 i32 f16 bf16` and equals the
    result element type; the shape is unchanged. A cast to the input's own
    type folds away.

    ```mlir
    %h = kiln.cast %x dtype "f16" : (tensor<4xf32>) -> tensor<4xf16>
    ```
  }];
  let arguments = (ins AnyTensor:$x, StrAttr:$dtype);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `dtype` $dtype attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Kiln_CastLikeOp : Kiln_PureOp<"cast_like"> {
  let summary = "element type conversion to another tensor's type";
  let description = [{
    `x.type_as(like)` when `like`'s element type is only known at run time (it
    derives from an argument of a bare traced archive, whose dtype the front
    end guessed). The result has `x`'s shape and, at compile time, `like`'s
    (guessed) element type; the kernel converts to `like`'s real dtype.

    ```mlir
    %y = kiln.cast_like %x, %like : (tensor<4xf32>, tensor<*xf32>) -> tensor<4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTensor:$like);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `,` $like attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_ClampOp : Kiln_PureOp<"clamp"> {
  let summary = "clamp to [min, max]";
  let description = [{
    `torch.clamp(x, min, max)`. An absent bound is unbounded; at least one is
    present. The result has the input's type.

    ```mlir
    %y = kiln.clamp %x min 0.000000e+00 max 6.000000e+00 : (tensor<4xf32>) -> tensor<4xf32>
    %z = kiln.clamp %x max 1.000000e+00 : (tensor<4xf32>) -> tensor<4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, OptionalAttr<F64Attr>:$min,
                   OptionalAttr<F64Attr>:$max);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x (`min` $min^)? (`max` $max^)? attr-dict `:` "
                       "functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Reductions and normalizations
//===----------------------------------------------------------------------===//

def Kiln_ReduceOp : Kiln_PureOp<"reduce"> {
  let summary = "reduction over dims";
  let description = [{
    Reduces `x` with `fn` (`sum mean max min prod`) over `dims` (empty = all
    dims), keeping reduced dims as size 1 when `keepdim`. `sum`/`prod` of an
    integer or bool input give i64; `mean` needs a float input (like
    PyTorch); `max`/`min` keep the element type.

    ```mlir
    %s = kiln.reduce "sum" %x dims [1] keepdim false : (tensor<2x4xf32>) -> tensor<2xf32>
    %m = kiln.reduce "mean" %x dims [-1] keepdim true : (tensor<2x4xf32>) -> tensor<2x1xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, StrAttr:$fn, DenseI64ArrayAttr:$dims,
                   BoolAttr:$keepdim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$fn $x `dims` $dims `keepdim` $keepdim attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_ArgmaxOp : Kiln_PureOp<"argmax"> {
  let summary = "index of the maximum along a dim, i64";
  let description = [{
    `torch.argmax(x, dim, keepdim)`; the result element type is i64.

    ```mlir
    %i = kiln.argmax %x dim -1 keepdim false : (tensor<2x8xf32>) -> tensor<2xi64>
    ```
  }];
  let arguments = (ins AnyTensor:$x, I64Attr:$dim, BoolAttr:$keepdim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `dim` $dim `keepdim` $keepdim attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_SoftmaxOp : Kiln_PureOp<"softmax"> {
  let summary = "softmax or log-softmax along a dim";
  let description = [{
    `softmax(x, dim)` (or `log_softmax` when `log`), computed in f32. The
    input is a float tensor and the result has its type.

    ```mlir
    %p = kiln.softmax %x dim -1 log false : (tensor<2x8xf32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, I64Attr:$dim, BoolAttr:$log);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `dim` $dim `log` $log attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_LayerNormOp : Kiln_PureOp<"layer_norm", [AttrSizedOperandSegments]> {
  let summary = "layer normalization over the trailing dims";
  let description = [{
    `F.layer_norm(x, x.shape[-normalized_ndim:], weight, bias, eps)`.
    `weight` and `bias` are optional; when present their shape is the
    trailing `normalized_ndim` dims of `x`. The result has the input's type.

    ```mlir
    %y = kiln.layer_norm %x weight %w bias %b normalized_ndim 1 eps 1.000000e-05
        : (tensor<2x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, Optional<AnyTensor>:$weight,
                   Optional<AnyTensor>:$bias, I64Attr:$normalized_ndim,
                   F64Attr:$eps);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x (`weight` $weight^)? (`bias` $bias^)? "
                       "`normalized_ndim` $normalized_ndim `eps` $eps "
                       "attr-dict `:` functional-type(operands, results)";
}

def Kiln_RmsNormOp : Kiln_PureOp<"rms_norm"> {
  let summary = "RMS normalization over the last dim";
  let description = [{
    `weight * x * rsqrt(mean(x^2, -1) + eps)`. `weight` is optional and 1-d
    with the size of the last dim of `x`. A fusion target: the front end
    emits the pieces, a pass recognises them.

    ```mlir
    %y = kiln.rms_norm %x weight %w eps 1.000000e-06 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, Optional<AnyTensor>:$weight,
                   F64Attr:$eps);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x (`weight` $weight^)? `eps` $eps attr-dict `:` "
                       "functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Contractions and gathers
//===----------------------------------------------------------------------===//

def Kiln_LinearOp : Kiln_PureOp<"linear"> {
  let summary = "x @ w.T + b";
  let description = [{
    `F.linear(x, w, b)`: `w` is 2-d `[out, in]`, the last dim of `x` is `in`,
    the optional bias `b` is 1-d `[out]`. The result's last dim is `out`.
    `w` may be a quantized weight (`!kiln.qweight`, read as f32); then `x`
    and the result are f32.

    ```mlir
    %y = kiln.linear %x, %w, %b : (tensor<2x8xf32>, tensor<16x8xf32>, tensor<16xf32>) -> tensor<2x16xf32>
    %z = kiln.linear %x, %w : (tensor<2x8xf32>, tensor<16x8xf32>) -> tensor<2x16xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTypeOf<[AnyTensor, Kiln_QWeightType]>:$w,
                       Optional<AnyTensor>:$b);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `,` $w (`,` $b^)? attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_MatmulOp : Kiln_PureOp<"matmul"> {
  let summary = "matrix product with batch broadcasting";
  let description = [{
    `torch.matmul(a, b)`: 1-d, 2-d and batched (broadcast) operands; `mm`
    and `bmm` map here. Neither operand is 0-d; the contracting dims (last of
    `a`; first of a 1-d `b`, else second to last) are equal when static.
    `transpose_b` (default false, printed only when true; set by `kiln-fuse`
    for `matmul(a, b.transpose(-2, -1))`): `b` has rank >= 2 and is read as
    its transpose over the last two dims, without materialising it (its
    last dim is then the contracting one).

    ```mlir
    %c = kiln.matmul %a, %b : (tensor<2x3x4xf32>, tensor<4x5xf32>) -> tensor<2x3x5xf32>
    %s = kiln.matmul %q, %k {transpose_b = true} : (tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>) -> tensor<1x4x6x6xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$a, AnyTensor:$b,
                   DefaultValuedAttr<BoolAttr, "false">:$transpose_b);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$a `,` $b attr-dict `:` functional-type(operands, results)";
}

def Kiln_EmbeddingOp : Kiln_PureOp<"embedding"> {
  let summary = "rows of a table gathered by integer indices";
  let description = [{
    `F.embedding(indices, weight)`: `weight` is 2-d `[num, dim]`, `indices`
    has an integer element type; the result shape is `indices.shape + [dim]`
    with the weight's element type. An out of range index is a run-time
    error.
    `weight` may be a quantized table (`!kiln.qweight`): the result is f32.

    ```mlir
    %e = kiln.embedding %w, %ids : (tensor<100x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
    ```
  }];
  let arguments = (ins AnyTypeOf<[AnyTensor, Kiln_QWeightType]>:$weight,
                       AnyTensor:$indices);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$weight `,` $indices attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_IndexSelectOp : Kiln_PureOp<"index_select"> {
  let summary = "gather along a dim by an integer index tensor";
  let description = [{
    `torch.index_select(x, dim, index)`, also `x[idx]` with one tensor index:
    the result shape is `x.shape[:dim] + index.shape + x.shape[dim+1:]` and
    its element type is x's. `index` has an integer element type.

    ```mlir
    %r = kiln.index_select %x, %i dim 0 : (tensor<8x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTensor:$index, I64Attr:$dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `,` $index `dim` $dim attr-dict `:` "
                       "functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

def Kiln_ReshapeOp : Kiln_PureOp<"reshape"> {
  let summary = "reshape to a run-time shape";
  let description = [{
    `x.reshape(shape)`: `shape` is a 1-d integer tensor and may hold one -1.
    The element type is unchanged; when `shape` has a static length the
    result rank equals it; when both shapes are static the element counts
    match.

    ```mlir
    %y = kiln.reshape %x, %s : (tensor<2x8xf32>, tensor<3xi64>) -> tensor<2x2x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTensor:$shape);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `,` $shape attr-dict `:` functional-type(operands, results)";
}

def Kiln_ExpandOp : Kiln_PureOp<"expand"> {
  let summary = "broadcast to a run-time shape";
  let description = [{
    `x.expand(shape)`: `shape` is a 1-d integer tensor; -1 keeps the dim.
    The result rank is the shape length (at least x's rank).

    ```mlir
    %y = kiln.expand %x, %s : (tensor<1x4xf32>, tensor<2xi64>) -> tensor<3x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTensor:$shape);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `,` $shape attr-dict `:` functional-type(operands, results)";
}

def Kiln_PermuteOp : Kiln_PureOp<"permute"> {
  let summary = "permute dims";
  let description = [{
    `x.permute(perm)`: `perm` is a permutation of the rank (negative entries
    count from the end); result dim i is input dim perm[i].

    ```mlir
    %y = kiln.permute %x perm [0, 2, 1] : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, DenseI64ArrayAttr:$perm);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `perm` $perm attr-dict `:` functional-type(operands, results)";
}

def Kiln_TransposeOp : Kiln_PureOp<"transpose"> {
  let summary = "swap two dims";
  let description = [{
    `x.transpose(dim0, dim1)`; `t()` maps here.

    ```mlir
    %y = kiln.transpose %x dim0 0 dim1 1 : (tensor<3x4xf32>) -> tensor<4x3xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, I64Attr:$dim0, I64Attr:$dim1);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `dim0` $dim0 `dim1` $dim1 attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_UnsqueezeOp : Kiln_PureOp<"unsqueeze"> {
  let summary = "insert a size-1 dim";
  let description = [{
    `x.unsqueeze(dim)`: `dim` is in `[-rank-1, rank]`; the result rank is
    rank + 1.

    ```mlir
    %y = kiln.unsqueeze %x dim 0 : (tensor<4xf32>) -> tensor<1x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, I64Attr:$dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `dim` $dim attr-dict `:` functional-type(operands, results)";
}

def Kiln_SqueezeOp : Kiln_PureOp<"squeeze"> {
  let summary = "remove size-1 dims";
  let description = [{
    `x.squeeze(dims)`: `dims` empty removes every size-1 dim; a listed dim
    whose size is not 1 is kept, like PyTorch.

    ```mlir
    %y = kiln.squeeze %x dims [0] : (tensor<1x4xf32>) -> tensor<4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, DenseI64ArrayAttr:$dims);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `dims` $dims attr-dict `:` functional-type(operands, results)";
}

def Kiln_FlattenOp : Kiln_PureOp<"flatten"> {
  let summary = "merge a range of dims";
  let description = [{
    `torch.flatten(x, start_dim, end_dim)`; `start_dim <= end_dim` after
    normalisation. A 0-d input gives a 1-d result.

    ```mlir
    %y = kiln.flatten %x start_dim 1 end_dim -1 : (tensor<2x3x4xf32>) -> tensor<2x12xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, I64Attr:$start_dim, I64Attr:$end_dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `start_dim` $start_dim `end_dim` $end_dim "
                       "attr-dict `:` functional-type(operands, results)";
}

def Kiln_SliceOp : Kiln_PureOp<"slice"> {
  let summary = "strided slice along one dim";
  let description = [{
    `x[..., start:end:step, ...]` on `dim`. `start` and `end` are 0-d integer
    tensors, clamped like Python slicing (negative counts from the end,
    INT64_MAX runs to the end); `step > 0`. The rank is unchanged.

    ```mlir
    %y = kiln.slice %x, %s, %e dim 1 step 1 : (tensor<2x8xf32>, tensor<i64>, tensor<i64>) -> tensor<2x?xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTensor:$start, AnyTensor:$end,
                   I64Attr:$dim, I64Attr:$step);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `,` $start `,` $end `dim` $dim `step` $step "
                       "attr-dict `:` functional-type(operands, results)";
}

def Kiln_SelectOp : Kiln_PureOp<"select"> {
  let summary = "pick one index along a dim, dropping it";
  let description = [{
    `x.select(dim, index)`: `index` is a 0-d integer tensor (negative counts
    from the end); the result rank is rank - 1.

    ```mlir
    %y = kiln.select %x, %i dim 0 : (tensor<3x4xf32>, tensor<i64>) -> tensor<4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTensor:$index, I64Attr:$dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `,` $index `dim` $dim attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_SplitOp : Kiln_PureOp<"split"> {
  let summary = "split into pieces along a dim";
  let description = [{
    Exactly one of: `split_size` (`torch.split(x, n)`: pieces of n, the last
    may be smaller), `sizes` (`split_with_sizes`: one result per size),
    `chunks` (`torch.chunk`: pieces of `ceil(size/chunks)`, at most `chunks`
    results). The number of results is fixed at compile time by the graph.

    ```mlir
    %a:2 = kiln.split %x dim 1 chunks 2 : (tensor<2x8xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
    %b:2 = kiln.split %x dim 1 sizes [6, 2] : (tensor<2x8xf32>) -> (tensor<2x6xf32>, tensor<2x2xf32>)
    ```
  }];
  let arguments = (ins AnyTensor:$x, I64Attr:$dim,
                   OptionalAttr<I64Attr>:$split_size,
                   OptionalAttr<DenseI64ArrayAttr>:$sizes,
                   OptionalAttr<I64Attr>:$chunks);
  let results = (outs Variadic<AnyTensor>:$outputs);
  let assemblyFormat = "$x `dim` $dim (`split_size` $split_size^)? "
                       "(`sizes` $sizes^)? (`chunks` $chunks^)? attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_ConcatOp : Kiln_PureOp<"concat"> {
  let summary = "concatenate along an existing dim";
  let description = [{
    `torch.cat(xs, dim)`: at least one operand, all of the same rank; the
    result element type is the promotion of the operand types.

    ```mlir
    %y = kiln.concat %a, %b dim 1 : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyTensor>:$xs, I64Attr:$dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$xs `dim` $dim attr-dict `:` functional-type(operands, results)";
}

def Kiln_StackOp : Kiln_PureOp<"stack"> {
  let summary = "stack along a new dim";
  let description = [{
    `torch.stack(xs, dim)`: at least one operand, all of the same rank;
    `dim` is in `[-rank-1, rank]`. Also builds shape lists from 0-d sizes.
    Constant operands of the result's type stacked along dim 0 fold to a
    constant.

    ```mlir
    %s = kiln.stack %n, %m dim 0 : (tensor<i64>, tensor<i64>) -> tensor<2xi64>
    ```
  }];
  let arguments = (ins Variadic<AnyTensor>:$xs, I64Attr:$dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$xs `dim` $dim attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Kiln_RepeatInterleaveOp : Kiln_PureOp<"repeat_interleave"> {
  let summary = "repeat each element along a dim";
  let description = [{
    `x.repeat_interleave(repeats, dim)` with `repeats > 0` (grouped-query
    attention expands keys/values this way).

    ```mlir
    %y = kiln.repeat_interleave %x repeats 2 dim 1 : (tensor<1x2x4xf32>) -> tensor<1x4x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, I64Attr:$repeats, I64Attr:$dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `repeats` $repeats `dim` $dim attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_RepeatOp : Kiln_PureOp<"repeat"> {
  let summary = "tile a tensor";
  let description = [{
    `x.repeat(*repeats)`: at least rank entries, each >= 0; the result rank
    is the number of entries.

    ```mlir
    %y = kiln.repeat %x repeats [2, 1] : (tensor<3x4xf32>) -> tensor<6x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, DenseI64ArrayAttr:$repeats);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `repeats` $repeats attr-dict `:` functional-type(operands, results)";
}

def Kiln_TriangularOp : Kiln_PureOp<"triangular"> {
  let summary = "upper or lower triangle of the last two dims";
  let description = [{
    `torch.triu(x, diagonal)` when `upper`, else `torch.tril(x, diagonal)`.
    The input has rank >= 2; the result has its type.

    ```mlir
    %m = kiln.triangular %x upper true diagonal 1 : (tensor<4x4xf32>) -> tensor<4x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, BoolAttr:$upper, I64Attr:$diagonal);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `upper` $upper `diagonal` $diagonal attr-dict `:` "
                       "functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Creation and sizes
//===----------------------------------------------------------------------===//

def Kiln_ArangeOp : Kiln_PureOp<"arange"> {
  let summary = "1-d range";
  let description = [{
    `torch.arange(start, end, step, dtype=dtype)`: the operands are 0-d, the
    result is 1-d with element type `dtype`.

    ```mlir
    %r = kiln.arange %s, %e, %st dtype "i64" : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
    ```
  }];
  let arguments = (ins AnyTensor:$start, AnyTensor:$end, AnyTensor:$step,
                   StrAttr:$dtype);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$start `,` $end `,` $step `dtype` $dtype attr-dict "
                       "`:` functional-type(operands, results)";
}

def Kiln_FullOp : Kiln_PureOp<"full"> {
  let summary = "tensor of a run-time shape filled with a value";
  let description = [{
    `torch.full(shape, value, dtype=dtype)`, also `ones`/`zeros`: `shape` is
    a 1-d integer tensor, the result element type is `dtype`.

    ```mlir
    %z = kiln.full %s value 0.000000e+00 dtype "f32" : (tensor<2xi64>) -> tensor<2x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$shape, F64Attr:$value, StrAttr:$dtype);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$shape `value` $value `dtype` $dtype attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_FullLikeOp : Kiln_PureOp<"full_like"> {
  let summary = "tensor of x's shape filled with a value";
  let description = [{
    `full_like`/`ones_like`/`zeros_like`: the result has x's shape and the
    element type `dtype`, or x's element type when `dtype` is empty.

    ```mlir
    %o = kiln.full_like %x value 1.000000e+00 dtype "" : (tensor<2x4xf32>) -> tensor<2x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, F64Attr:$value, StrAttr:$dtype);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `value` $value `dtype` $dtype attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_DimSizeOp : Kiln_PureOp<"dim_size"> {
  let summary = "size of one dim as a 0-d i64 tensor";
  let description = [{
    `x.size(dim)`; the result is `tensor<i64>`. Folds to a constant when the
    dim is static.

    ```mlir
    %n = kiln.dim_size %x dim 1 : (tensor<2x?xf32>) -> tensor<i64>
    ```
  }];
  let arguments = (ins AnyTensor:$x, I64Attr:$dim);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$x `dim` $dim attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Kiln_ShapeOfOp : Kiln_PureOp<"shape_of"> {
  let summary = "shape as a 1-d i64 tensor";
  let description = [{
    `x.size()`; the result is 1-d i64 with one entry per dim of x. Folds to a
    constant when the shape is static.

    ```mlir
    %s = kiln.shape_of %x : (tensor<2x?xf32>) -> tensor<2xi64>
    ```
  }];
  let arguments = (ins AnyTensor:$x);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
  let hasFolder = 1;
}

def Kiln_CopyOp : Kiln_PureOp<"copy"> {
  let summary = "explicit copy";
  let description = [{
    `x.clone()`: the result has x's element type and shape. Lowering may drop
    it.

    ```mlir
    %y = kiln.copy %x : (tensor<4xf32>) -> tensor<4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Fused ops (targets of kiln-fuse)
//===----------------------------------------------------------------------===//

def Kiln_SwigluOp : Kiln_PureOp<"swiglu"> {
  let summary = "silu(gate) * up";
  let description = [{
    The SwiGLU gate of a Llama-style MLP: `F.silu(gate) * up`, elementwise
    with broadcasting like `kiln.binary "mul"`. `gate`, `up` and the result
    have the same float element type. A fusion target (`kiln-fuse`).

    ```mlir
    %h = kiln.swiglu %gate, %up : (tensor<2x64xf32>, tensor<2x64xf32>) -> tensor<2x64xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$gate, AnyTensor:$up);
  let results = (outs AnyTensor:$result);
  let assemblyFormat =
      "$gate `,` $up attr-dict `:` functional-type(operands, results)";
}

def Kiln_RopeOp : Kiln_PureOp<"rope"> {
  let summary = "rotary position embedding";
  let description = [{
    `x * cos + rotate(x) * sin`, elementwise with broadcasting of `x`, `cos`
    and `sin` (the result shape is the broadcast of the three; the last dim
    of `x` must not be broadcast). `rotate` acts on the last dim of `x`
    (size `D`):
    * `style = "rotate_half"`: `cat(-x[..., h:], x[..., :h])` with
      `h = D floordiv 2` (Llama / GPT-NeoX form);
    * `style = "interleaved"`: pairs `(x[2i], x[2i+1])` become
      `(-x[2i+1], x[2i])` (GPT-J form); `D` must be even.
    Typically `x` is `[B, H, T, D]` and `cos`/`sin` are `[T, D]`. All three
    have the same float element type. A fusion target (`kiln-fuse`).

    ```mlir
    %r = kiln.rope %x, %cos, %sin style "rotate_half" : (tensor<1x4x6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<1x4x6x8xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTensor:$cos, AnyTensor:$sin,
                   StrAttr:$style);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `,` $cos `,` $sin `style` $style attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_RopePermOp : Kiln_PureOp<"rope_perm"> {
  let summary = "rotary position embedding with a lane permutation";
  let description = [{
    `x * cos + x[..., perm] * sin`: with `D` the last dim of `x`,
    `y[..., i] = x[..., i] * cos[..., i] + x[..., perm[i]] * sin[..., i]`,
    elementwise with broadcasting of `x`, `cos` and `sin` like `binary` (the
    result shape is the broadcast of the three; the last dim of `x` must not
    be broadcast). `perm` is a permutation of `0 .. D-1` (no negative
    entries, `D >= 1`). Any signs belong to `sin` (no negation here): the
    rotate-half form has `perm = [h .. D-1, 0 .. h-1]` and `sin` negative on
    the first half, the interleaved-pairs form `perm = [1, 0, 3, 2, ...]` and
    `sin` negative on even lanes. `x`, `cos`, `sin` and the result have the
    same float element type; computed in f32. A fusion target (`kiln-fuse`,
    from `add(mul(x, cos), mul(index_select(x, -1, perm), sin))`).

    ```mlir
    %r = kiln.rope_perm %x, %cos, %sin perm [2, 3, 0, 1] : (tensor<1x4x6x4xf32>, tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<1x4x6x4xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$x, AnyTensor:$cos, AnyTensor:$sin,
                   DenseI64ArrayAttr:$perm);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$x `,` $cos `,` $sin `perm` $perm attr-dict `:` "
                       "functional-type(operands, results)";
}

def Kiln_AttentionOp : Kiln_PureOp<"attention"> {
  let summary = "scaled dot-product attention, grouped-query and causal";
  let description = [{
    `softmax(q @ k^T * scale + mask, -1) @ v` with q `[B, Hq, T, D]`, k
    `[B, Hkv, S, D]`, v `[B, Hkv, S, Dv]` and the result `[B, Hq, T, Dv]`.
    `Hq % Hkv == 0`: kv head `g` serves the `Hq / Hkv` consecutive query heads
    `g * Hq/Hkv ...` (as `repeat_interleave(k, Hq/Hkv, 1)` would, without
    materialising it). A batch of 1 broadcasts against the other operands'.
    `causal`: query `i` attends keys `j <= i + (S - T)` (so a decode step of
    T queries against a longer key sequence works). The optional `mask` is
    broadcastable to `[B, Hq, T, S]`: a boolean mask keeps the keys where it
    is true, a float mask is added to the scores. The softmax is computed in
    f32; a query row with no attended key gives NaN like PyTorch. q, k, v and
    the result have the same float element type.

    ```mlir
    %o = kiln.attention %q, %k, %v scale 0.35355339059327379 causal true : (tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) -> tensor<1x4x6x8xf32>
    %m = kiln.attention %q, %k, %v mask %bias scale 1.250000e-01 causal false : (tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>, tensor<6x6xf32>) -> tensor<1x4x6x8xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$q, AnyTensor:$k, AnyTensor:$v,
                   Optional<AnyTensor>:$mask, F64Attr:$scale,
                   BoolAttr:$causal);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$q `,` $k `,` $v (`mask` $mask^)? `scale` $scale "
                       "`causal` $causal attr-dict `:` "
                       "functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Program state (KV caches, docs/llm.md)
//===----------------------------------------------------------------------===//

def Kiln_StateOp : Kiln_Op<"state", [MemoryEffects<[MemRead]>]> {
  let summary = "program-level mutable state, by name";
  let description = [{
    The current contents of the program-level state `name`: a tensor with a
    static shape that persists across method calls and is shared by every
    method of the program by name (a KV cache). It is zero when the program is
    loaded (and after the runtime's `resetState`). Every `kiln.state` of one
    name in a module must have the same type (checked by the lowering). Only
    `kiln.cache_write` changes a state; reading it with `kiln.state` after a
    write in the same function sees the write (the op reads memory, so CSE
    never merges reads across a write).

    ```mlir
    %k = kiln.state "k_cache_0" : tensor<1x2x32x16xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Kiln_CacheWriteOp : Kiln_Op<"cache_write", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "writes rows into a state in place (KV-cache update)";
  let description = [{
    `state.index_copy_(dim, positions, values)` done in place on the
    program-level state: for every `i`, the slice `positions[i]` of `state`
    along `dim` becomes slice `i` of `values` along `dim`. `state` must be the
    result of `kiln.state` or of another `kiln.cache_write` (a chain of writes
    to one state); the result is the same state after the write, and every
    later reader must use it (or a new `kiln.state` of the name), never the
    value from before the write. `positions` is a 1-d integer tensor of `N`
    positions, `values` has the state's shape with `N` at `dim`, and the
    state's element type or, for a float state, another float type that the
    write rounds to the state's (as `kiln.cast`: an f16 KV cache written from
    f32 k / v; kiln-fuse folds such casts in). A position outside `[0, state.shape[dim])` is a
    run-time error. The op has memory effects: DCE, CSE and canonicalization
    never drop, merge or reorder it.

    ```mlir
    %k1 = kiln.cache_write %k0[%pos], %knew dim 2 : (tensor<1x2x32x16xf32>, tensor<8xi64>, tensor<1x2x8x16xf32>) -> tensor<1x2x32x16xf32>
    ```
  }];
  let arguments = (ins AnyStaticShapeTensor:$state, AnyTensor:$positions,
                   AnyTensor:$values, I64Attr:$dim);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$state `[` $positions `]` `,` $values `dim` $dim attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_CachedAttentionOp : Kiln_PureOp<"cached_attention"> {
  let summary = "causal grouped-query attention over a KV cache";
  let description = [{
    `torch.ops.kiln.cached_attention` (docs/llm.md): q `[B, Hq, T, D]`,
    caches `k_cache`, `v_cache` `[B, Hkv, S, D]` with `Hq % Hkv == 0` (query
    head `h` reads kv head `h / (Hq / Hkv)`), `start_pos` i64 `[1]`. Query `i`
    sits at absolute position `p = start_pos + i` and attends to cache
    positions `0..p` only: `softmax(q . k^T * scale) . v` in f32; cache rows
    after `p` are never read. The result has q's type. The two caches share a
    float element type, which may differ from q's (f16 caches for f32 q:
    `kiln export-hf --kv-cache-dtype f16`). `p >= S` is a run-time error.

    ```mlir
    %o = kiln.cached_attention %q, %k, %v, %start scale 2.500000e-01 : (tensor<1x4x8x16xf32>, tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>, tensor<1xi64>) -> tensor<1x4x8x16xf32>
    ```
  }];
  let arguments = (ins AnyTensor:$q, AnyTensor:$k_cache, AnyTensor:$v_cache,
                   AnyTensor:$start_pos, F64Attr:$scale);
  let results = (outs AnyTensor:$result);
  let assemblyFormat = "$q `,` $k_cache `,` $v_cache `,` $start_pos `scale` $scale "
                       "attr-dict `:` functional-type(operands, results)";
}

#endif // KILN_DIALECT_KILNOPS_TD
