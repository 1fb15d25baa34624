//===- Passes.td - the kiln passes -------------------------*- tablegen -*-===//
//
// Every kiln pass: its flag (kiln-...), summary, description, options and
// statistics. One pass per .cpp file in passes/, named after the pass, using
// the generated GEN_PASS_DEF_<NAME> base. Each has a lit test named after it
// in tests/lit/passes/.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES
#define KILN_PASSES

include "mlir/Pass/PassBase.td"

def DedupWeights : Pass<"kiln-dedup-weights", "mlir::ModuleOp"> {
  let summary = "store constants with identical bytes once";
  let description = [{
    Finds `kiln.constant` ops whose values have the same type and the same
    bytes (a content hash, then a byte comparison) and makes them one: within
    a function, every use moves to the first such constant and the others are
    erased; across functions (methods), every copy is rewritten to refer to the
    first one's value (the same resource blob), so the program stores it once.
    This covers tied embeddings (embedding table and output head), blocks
    executed several times with shared weights (MobileLLM-LS), and any weight
    that tracing duplicated. Constants of different types or shapes never merge,
    even when their bytes are equal.
  }];
  let dependentDialects = ["kiln::KilnDialect"];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark with what the pass did (the statistics below are "
           "compiled out of release LLVM builds such as Debian's)">,
  ];
  let statistics = [
    Statistic<"numConstants", "constants", "Number of constants examined">,
    Statistic<"numMerged", "merged", "Number of constants merged into another">,
    Statistic<"bytesSaved", "bytes-saved", "Bytes of constant data no longer stored twice">,
  ];
}

def GroupLinears : Pass<"kiln-group-linears", "mlir::ModuleOp"> {
  let summary = "place the linear ops that read the same input next to each other";
  let description = [{
    Moves every `kiln.linear` whose input `x` an earlier `kiln.linear` of the
    same function also reads up to right after it (after the previous one of
    the run), so the q / k / v projections of an attention block and the gate
    / up projections of its MLP become consecutive ops. Linears are pure, so
    only the order changes: no value, type or operand does. A weight or bias
    constant defined after the new position moves up with its linear; a linear
    with any other operand defined later stays where it is. The runtime runs
    consecutive linears with the same input as one parallel job
    (docs/runtime-kernels.md "Linear groups"). Runs before kiln-plan-memory,
    which plans over the new order.

    ```mlir
    %q = kiln.linear %x, %wq ...
    %r = kiln.reshape %q ...
    %k = kiln.linear %x, %wk ...
    // --kiln-group-linears
    %q = kiln.linear %x, %wq ...
    %k = kiln.linear %x, %wk ...
    %r = kiln.reshape %q ...
    ```
  }];
  let dependentDialects = ["kiln::KilnDialect"];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark with the number of linears moved and groups formed">,
  ];
  let statistics = [
    Statistic<"numMoved", "moved", "Number of linear ops moved next to a sibling">,
    Statistic<"numGroups", "groups", "Number of runs of two or more linears sharing an input">,
  ];
}

def PlanMemory : Pass<"kiln-plan-memory", "mlir::ModuleOp"> {
  let summary = "give every statically shaped intermediate an offset in one arena";
  let description = [{
    Plans the activation memory of each function (method) over its final op
    order, so it must run last. A value lives from its defining op to its last
    use; function results live to the end (the return). Arguments,
    constants and program state (`kiln.state`, `kiln.cache_write`: they live
    in the runtime's state buffers) are not in the arena, and state is never
    overwritten by an in-place result. Only results with a fully static shape and
    a known element type are planned; the others (dynamic or unranked shapes,
    dtypes derived from a guessed argument dtype) are left to the runtime
    allocator and counted as "left dynamic".

    In place: a `unary`, `binary`, `compare`, `where`, `cast`, `clamp` or
    `copy` result may take the offset of an operand that has the result's
    shape and byte size, is planned, and dies at this op (no later use): the
    runtime's kernels for these ops read element i of every operand before
    writing element i of the result. A broadcast operand (shape different from
    the result's) is never overwritten. The views `reshape`, `unsqueeze`,
    `squeeze` and `flatten` (run as byte copies) may take their operand 0's
    offset on the same conditions, without the shape condition; so may a
    `transpose` or `permute` of a static operand that only moves dims of size
    1 (the dims of size > 1 keep their order, e.g. [1, 1, H, D] -> [1, H, 1, D]
    in a decode step: the same bytes).

    Offsets: values overwritten in place form one buffer; buffers are taken
    in an order and each is put at the start of the smallest gap, among the
    buffers already placed whose lifetimes overlap its own, that fits it
    (best fit), or on top of them. Six orders are tried and the smallest
    arena kept (the first on ties): by size (largest first) then earliest
    start, by size x lifetime, by start then size, by size then latest end,
    by lifetime then size, by size then lifetime. Every size is rounded up to
    64 bytes and every offset is a multiple of 64.

    Records, on every op with a tensor result except constants (weights,
    quantized ones too, stay in the program file) and state ops,
    `kiln.arena_offsets = array<i64: ...>` (one entry per result, -1 = not
    planned) and, on each function,
    `kiln.arena_bytes` (the arena size), `kiln.arena_lower_bound_bytes` (the
    largest total of simultaneously live buffers at any op, sizes rounded to
    64; no packing can do better) and `kiln.naive_bytes` (the sum of all
    planned values' rounded sizes: one buffer each, no reuse). The portable
    lowering copies them into the program (Value.arena_offset,
    Method.arena_bytes, ...) and the runtime binds the planned values to
    slices of one arena per method.

    Mutable state (a KV cache, shared by methods and persisting across calls)
    is not an activation: when the dialect gains it, it is planned separately,
    outside this arena.
  }];
  let dependentDialects = ["kiln::KilnDialect"];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark per function: arena bytes, lower bound, naive bytes, "
           "values planned, left dynamic and overwritten in place">,
  ];
  let statistics = [
    Statistic<"numPlanned", "planned", "Number of values given an arena offset">,
    Statistic<"numDynamic", "dynamic", "Number of values left to the runtime allocator">,
    Statistic<"numInPlace", "in-place", "Number of values written over an operand">,
  ];
}

def Quantize : Pass<"kiln-quantize", "mlir::ModuleOp"> {
  let summary = "weight-only int8 per-channel / int4 group-wise quantization";
  let description = [{
    Replaces each f32 2-d `kiln.constant` whose every use is the weight of a
    `kiln.linear` (with an f32 input) or the table of a `kiln.embedding` with a
    `kiln.qconstant` of type `!kiln.qweight` and makes those ops read it. A
    constant used by both (a tied embedding and output head, merged by
    kiln-dedup-weights) is quantized once and both ops use it. A constant that
    any other op also reads (e.g. a transpose, a matmul, a return) stays f32,
    entirely: no f32 copy is kept beside a quantized one.

    Symmetric quantization, f16 scales (docs/dialect.md "Quantized weights"):
    * `mode=int8`: one scale per row: `scale = max|w_row| / 127`,
      `q = round(w / scale)` clamped to [-127, 127].
    * `mode=int4`: one scale per `group-size` consecutive in-features of a
      row: `scale = max|w_group| / 7`, `q = round(w / scale)` clamped to
      [-8, 7] (so in [-7, 7]); packed two per byte, low nibble first.
    `q` is computed with the f16-rounded scale, so `q * scale` is exactly
    what the runtime reads. An all-zero row or group gets scale 0.
    For int4 the group size must be 32, 64 or 128 and divide the in-features
    of every weight it quantizes; otherwise the pass fails with an error at
    the weight naming its shape. Constants that appear in several functions
    (methods) with the same value are quantized once and share their data.

    ```mlir
    %w = kiln.constant dense<...> : tensor<16x64xf32>
    %y = kiln.linear %x, %w : (tensor<2x64xf32>, tensor<16x64xf32>) -> tensor<2x16xf32>
    // --kiln-quantize=mode=int4 group-size=32
    %q = kiln.qconstant dense<...> : tensor<16x32xi8> scales dense<...> : tensor<16x2xf16>
        : !kiln.qweight<i4, [16, 64], group = 32>
    %y = kiln.linear %x, %q : (tensor<2x64xf32>, !kiln.qweight<i4, [16, 64], group = 32>) -> tensor<2x16xf32>
    ```
  }];
  let dependentDialects = ["kiln::KilnDialect"];
  let options = [
    Option<"mode", "mode", "std::string", /*default=*/"\"none\"",
           "none, int8 (per output channel) or int4 (group-wise)">,
    Option<"groupSize", "group-size", "int64_t", /*default=*/"32",
           "int4: in-features per scale (32, 64 or 128)">,
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark with what the pass did (the statistics below are "
           "compiled out of release LLVM builds such as Debian's)">,
  ];
  let statistics = [
    Statistic<"numQuantized", "quantized", "Number of weight constants quantized">,
    Statistic<"numKeptF32", "kept-f32", "Weight constants kept f32 because other ops read them">,
    Statistic<"bytesBefore", "bytes-before", "f32 bytes of the quantized weights">,
    Statistic<"bytesAfter", "bytes-after", "Bytes of their quantized data and scales">,
  ];
}

def FuseOps : Pass<"kiln-fuse", "mlir::ModuleOp"> {
  let summary = "recognise RMSNorm, SwiGLU, RoPE and causal GQA attention";
  let description = [{
    Greedy pattern rewrites (one pattern per fused op, each checking all of
    its preconditions) that turn the pieces the front end imports from traced
    PyTorch code into one fused op each:
    * `x * rsqrt(mean(x^2, -1, keepdim) + eps)` (`x^2` as `pow(x, 2)` or
      `x * x`, eps a constant, either operand order) -> `kiln.rms_norm`; a
      following `w * ...` with a 1-d `w` becomes its weight;
    * `silu(g) * u` and `g * sigmoid(g) * u` -> `kiln.swiglu %g, %u`;
    * `x * cos + cat(-x[..., h:], x[..., :h], -1) * sin` with `h = D // 2`
      (from `x.size(-1) // 2` or a constant matching a static D) ->
      `kiln.rope ... style "rotate_half"`; `x * cos + stack(-x[..., 1::2],
      x[..., ::2], -1).flatten(-2) * sin` -> `style "interleaved"`;
    * `x * cos + x.index_select(-1, perm) * sin` with `perm` a constant 1-d
      integer permutation of x's last dim (its length must equal that dim
      when it is known, and be >= 2 otherwise) -> `kiln.rope_perm ... perm
      [...]` (MobileLLM's export writes RoPE this way, with the signs in the
      sin table, for rotate-half and for R1's interleaved pairs);
    * `softmax(q @ k.transpose(-2, -1) {* c | / c} [masked_fill(triu(ones(n,
      n, bool), 1), -inf)], -1) @ v` with 4-d q/k/v, k and v optionally
      `repeat_interleave`d by the same factor on dim 1 (grouped-query
      attention; q's head count must then be provably Hkv * factor) ->
      `kiln.attention` (causal when the triu mask is there);
    * `matmul(a, b.transpose(-2, -1))` (the transpose used once) ->
      `kiln.matmul %a, %b {transpose_b = true}`;
    * `cache_write(state, pos, cast(x))` with a float x cast to the state's
      float type -> `cache_write(state, pos, x)` (the write rounds; an f16
      KV cache fed by f32 k / v).
    Every intermediate that the fused op replaces must have no other use, or
    nothing is fused. Ranks and dims of unranked values are inferred from
    their producers (reshape to a shape list of known length, transpose,
    ...) only where that is certain. The causal mask is recognised as a
    square `triu(ones(n, n), 1)`: when the score dims are static they must be
    [n, n]; when they are not, the pattern relies on the mask matching the
    scores (a square mask of another size would have changed the result's
    shape by broadcasting in PyTorch, which no attention code does).
  }];
  let dependentDialects = ["kiln::KilnDialect"];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Emit a remark with the number of ops fused, per fused op">,
  ];
  let statistics = [
    Statistic<"numRmsNorm", "rms-norm", "Number of kiln.rms_norm ops formed">,
    Statistic<"numSwiglu", "swiglu", "Number of kiln.swiglu ops formed">,
    Statistic<"numRope", "rope", "Number of kiln.rope and kiln.rope_perm ops formed">,
    Statistic<"numAttention", "attention", "Number of kiln.attention ops formed">,
    Statistic<"numTransposeB", "transpose-b", "Number of transposes folded into kiln.matmul">,
  ];
}

#endif // KILN_PASSES
