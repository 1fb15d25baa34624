// Every verifier message of the kiln ops, each triggered once (shared helper
// messages once per kind of use).
// RUN: kiln-opt %s --split-input-file --verify-diagnostics

// === constant ===

func.func @constant_sparse() -> tensor<4xf32> {
  // Constants become byte segments: only dense storage is accepted.
  // expected-error @+1 {{value must be a DenseElementsAttr or a DenseResourceElementsAttr}}
  %0 = kiln.constant sparse<[[1]], [2.0]> : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// === unary ===

func.func @unary_unknown_fn(%x: tensor<4xf32>) {
  // expected-error @+1 {{unknown fn "swish"; expected one of: neg abs exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu silu gelu gelu_tanh erf logical_not floor ceil round}}
  %0 = kiln.unary "swish" %x : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @unary_float_only_of_int(%x: tensor<4xi64>) {
  // sqrt of an integer tensor is f32 in PyTorch.
  // expected-error @+1 {{result element type 'i64' does not match the expected 'f32' (a float-only fn of an integer input gives f32)}}
  %0 = kiln.unary "sqrt" %x : (tensor<4xi64>) -> tensor<4xi64>
  return
}

// -----

func.func @unary_logical_not(%x: tensor<4xf32>) {
  // expected-error @+1 {{result element type 'f32' does not match the expected 'i1' (logical_not gives i1)}}
  %0 = kiln.unary "logical_not" %x : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @unary_shape(%x: tensor<4xf32>) {
  // expected-error @+1 {{result shape [5] is incompatible with the expected shape [4]}}
  %0 = kiln.unary "exp" %x : (tensor<4xf32>) -> tensor<5xf32>
  return
}

// -----

// === binary ===

func.func @binary_unknown_fn(%x: tensor<4xf32>) {
  // expected-error @+1 {{unknown fn "atan2"; expected one of: add sub mul div floor_div trunc_div remainder pow maximum minimum}}
  %0 = kiln.binary "atan2" %x, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @binary_promotion(%x: tensor<4xf32>, %i: tensor<4xi64>) {
  // An integer and a float tensor of the same priority promote to the float.
  // expected-error @+1 {{result element type 'i64' does not match the expected 'f32' (PyTorch promotion of 'f32' and 'i64')}}
  %0 = kiln.binary "add" %x, %i : (tensor<4xf32>, tensor<4xi64>) -> tensor<4xi64>
  return
}

// -----

func.func @binary_zero_dim_same_category(%x: tensor<4xf16>, %s: tensor<f32>) {
  // A 0-d f32 does not widen a dimensioned f16 (same category).
  // expected-error @+1 {{result element type 'f32' does not match the expected 'f16'}}
  %0 = kiln.binary "mul" %x, %s : (tensor<4xf16>, tensor<f32>) -> tensor<4xf32>
  return
}

// -----

func.func @binary_true_division(%i: tensor<4xi64>) {
  // expected-error @+1 {{result element type 'i64' does not match the expected 'f32' (PyTorch promotion of 'i64' and 'i64', true division)}}
  %0 = kiln.binary "div" %i, %i : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>
  return
}

// -----

func.func @binary_broadcast(%a: tensor<2x3xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{operand shapes do not broadcast: [2, 3] and [4]}}
  %0 = kiln.binary "add" %a, %b : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @binary_broadcast_result(%a: tensor<2x1xf32>, %b: tensor<4xf32>) {
  // [2, 1] with [4] broadcasts to [2, 4].
  // expected-error @+1 {{result shape [2, 1] is incompatible with the expected shape [2, 4]}}
  %0 = kiln.binary "add" %a, %b : (tensor<2x1xf32>, tensor<4xf32>) -> tensor<2x1xf32>
  return
}

// -----

// === compare ===

func.func @compare_unknown_fn(%x: tensor<4xf32>) {
  // expected-error @+1 {{unknown fn "isclose"; expected one of: eq ne lt le gt ge logical_and logical_or logical_xor}}
  %0 = kiln.compare "isclose" %x, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xi1>
  return
}

// -----

func.func @compare_result_bool(%x: tensor<4xf32>) {
  // expected-error @+1 {{result element type 'f32' does not match the expected 'i1' (compare gives i1)}}
  %0 = kiln.compare "lt" %x, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

// === where ===

func.func @where_condition(%c: tensor<4xf32>, %x: tensor<4xf32>) {
  // expected-error @+1 {{condition element type 'f32' does not match the expected 'i1' (the condition is bool)}}
  %0 = kiln.where %c, %x, %x : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @where_promotion(%c: tensor<4xi1>, %x: tensor<4xf32>, %i: tensor<4xi32>) {
  // expected-error @+1 {{result element type 'i32' does not match the expected 'f32'}}
  %0 = kiln.where %c, %x, %i : (tensor<4xi1>, tensor<4xf32>, tensor<4xi32>) -> tensor<4xi32>
  return
}

// -----

func.func @where_broadcast(%c: tensor<3xi1>, %x: tensor<4xf32>) {
  // expected-error @+1 {{operand shapes do not broadcast: [3] and [4]}}
  %0 = kiln.where %c, %x, %x : (tensor<3xi1>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

// === cast ===

func.func @cast_unknown_dtype(%x: tensor<4xf32>) {
  // expected-error @+1 {{unknown dtype "f64"; expected one of: f32 i64 i1 i32 f16 bf16}}
  %0 = kiln.cast %x dtype "f64" : (tensor<4xf32>) -> tensor<4xf64>
  return
}

// -----

func.func @cast_result(%x: tensor<4xf32>) {
  // expected-error @+1 {{result element type 'f32' does not match the expected 'f16' (the dtype attribute)}}
  %0 = kiln.cast %x dtype "f16" : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

// === clamp ===

func.func @clamp_no_bound(%x: tensor<4xf32>) {
  // expected-error @+1 {{needs at least one of 'min' and 'max'}}
  %0 = kiln.clamp %x : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @clamp_type(%x: tensor<4xf32>) {
  // expected-error @+1 {{result element type 'f16' does not match the expected 'f32' (same as the input)}}
  %0 = kiln.clamp %x min 0.0 : (tensor<4xf32>) -> tensor<4xf16>
  return
}

// -----

// === reduce ===

func.func @reduce_unknown_fn(%x: tensor<4xf32>) {
  // expected-error @+1 {{unknown fn "any"; expected one of: sum mean max min prod}}
  %0 = kiln.reduce "any" %x dims [] keepdim false : (tensor<4xf32>) -> tensor<f32>
  return
}

// -----

func.func @reduce_mean_of_int(%x: tensor<4xi64>) {
  // expected-error @+1 {{mean needs a float input, got 'i64' (cast first, like PyTorch)}}
  %0 = kiln.reduce "mean" %x dims [] keepdim false : (tensor<4xi64>) -> tensor<f32>
  return
}

// -----

func.func @reduce_sum_of_int(%x: tensor<4xi32>) {
  // expected-error @+1 {{result element type 'i32' does not match the expected 'i64' (sum/prod of an integer or bool input gives i64)}}
  %0 = kiln.reduce "sum" %x dims [] keepdim false : (tensor<4xi32>) -> tensor<i32>
  return
}

// -----

func.func @reduce_dim_range(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'dims' 2 is out of range for rank 2 (expected [-2, 1])}}
  %0 = kiln.reduce "sum" %x dims [2] keepdim false : (tensor<2x4xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @reduce_dim_repeat(%x: tensor<2x4xf32>) {
  // -1 and 1 name the same dim of a rank-2 tensor.
  // expected-error @+1 {{'dims' repeats dim -1}}
  %0 = kiln.reduce "sum" %x dims [1, -1] keepdim false : (tensor<2x4xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @reduce_keepdim_shape(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{result shape [2] is incompatible with the expected shape [2, 1]}}
  %0 = kiln.reduce "max" %x dims [1] keepdim true : (tensor<2x4xf32>) -> tensor<2xf32>
  return
}

// -----

// === argmax ===

func.func @argmax_i64(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{result element type 'i32' does not match the expected 'i64' (argmax gives i64)}}
  %0 = kiln.argmax %x dim 1 keepdim false : (tensor<2x4xf32>) -> tensor<2xi32>
  return
}

// -----

func.func @argmax_dim(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'dim' -3 is out of range for rank 2 (expected [-2, 1])}}
  %0 = kiln.argmax %x dim -3 keepdim false : (tensor<2x4xf32>) -> tensor<2xi64>
  return
}

// -----

// === softmax ===

func.func @softmax_int(%x: tensor<4xi64>) {
  // expected-error @+1 {{needs a float input, got 'i64'}}
  %0 = kiln.softmax %x dim 0 log false : (tensor<4xi64>) -> tensor<4xi64>
  return
}

// -----

func.func @softmax_dim(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'dim' 2 is out of range for rank 2}}
  %0 = kiln.softmax %x dim 2 log false : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// === layer_norm ===

func.func @layer_norm_ndim_zero(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'normalized_ndim' must be at least 1, got 0}}
  %0 = kiln.layer_norm %x normalized_ndim 0 eps 1.0e-5 : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_ndim_rank(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'normalized_ndim' 3 exceeds the input rank 2}}
  %0 = kiln.layer_norm %x normalized_ndim 3 eps 1.0e-5 : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_eps(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'eps' must be non-negative}}
  %0 = kiln.layer_norm %x normalized_ndim 1 eps -1.0e-5 : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_int(%x: tensor<2x8xi64>) {
  // expected-error @+1 {{needs a float input, got 'i64'}}
  %0 = kiln.layer_norm %x normalized_ndim 1 eps 1.0e-5 : (tensor<2x8xi64>) -> tensor<2x8xi64>
  return
}

// -----

func.func @layer_norm_weight_rank(%x: tensor<2x8xf32>, %w: tensor<2x8xf32>) {
  // expected-error @+1 {{'weight' must have rank 1, got 2}}
  %0 = kiln.layer_norm %x weight %w normalized_ndim 1 eps 1.0e-5 : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_bias_shape(%x: tensor<2x8xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{'bias' shape [4] does not match the normalized dims [8]}}
  %0 = kiln.layer_norm %x bias %b normalized_ndim 1 eps 1.0e-5 : (tensor<2x8xf32>, tensor<4xf32>) -> tensor<2x8xf32>
  return
}

// -----

// === rms_norm ===

func.func @rms_norm_eps(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'eps' must be non-negative}}
  %0 = kiln.rms_norm %x eps -1.0 : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @rms_norm_int(%x: tensor<2x8xi32>) {
  // expected-error @+1 {{needs a float input, got 'i32'}}
  %0 = kiln.rms_norm %x eps 1.0e-6 : (tensor<2x8xi32>) -> tensor<2x8xi32>
  return
}

// -----

func.func @rms_norm_rank(%x: tensor<f32>) {
  // expected-error @+1 {{needs an input of rank at least 1}}
  %0 = kiln.rms_norm %x eps 1.0e-6 : (tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<2x8xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'weight' shape [16] does not match the normalized dims [8]}}
  %0 = kiln.rms_norm %x weight %w eps 1.0e-6 : (tensor<2x8xf32>, tensor<16xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @rms_norm_result(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{result shape [8, 2] is incompatible with the expected shape [2, 8]}}
  %0 = kiln.rms_norm %x eps 1.0e-6 : (tensor<2x8xf32>) -> tensor<8x2xf32>
  return
}

// -----

// === linear ===

func.func @linear_weight_rank(%x: tensor<2x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{weight must be 2-d [out, in], got rank 1}}
  %0 = kiln.linear %x, %w : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_input_rank(%x: tensor<f32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{input must have rank at least 1}}
  %0 = kiln.linear %x, %w : (tensor<f32>, tensor<16x8xf32>) -> tensor<16xf32>
  return
}

// -----

func.func @linear_in_features(%x: tensor<2x4xf32>, %w: tensor<16x8xf32>) {
  // w is [out=16, in=8]: x's last dim must be 8.
  // expected-error @+1 {{in-features mismatch: input has 4, weight has 8}}
  %0 = kiln.linear %x, %w : (tensor<2x4xf32>, tensor<16x8xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_bias_rank(%x: tensor<2x8xf32>, %w: tensor<16x8xf32>, %b: tensor<1x16xf32>) {
  // expected-error @+1 {{bias must be 1-d [out], got rank 2}}
  %0 = kiln.linear %x, %w, %b : (tensor<2x8xf32>, tensor<16x8xf32>, tensor<1x16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_bias_size(%x: tensor<2x8xf32>, %w: tensor<16x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{bias size 8 does not match out-features 16}}
  %0 = kiln.linear %x, %w, %b : (tensor<2x8xf32>, tensor<16x8xf32>, tensor<8xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<2x8xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{result shape [2, 8] is incompatible with the expected shape [2, 16]}}
  %0 = kiln.linear %x, %w : (tensor<2x8xf32>, tensor<16x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

// === matmul ===

func.func @matmul_types(%a: tensor<2x4xf32>, %b: tensor<4x3xf16>) {
  // expected-error @+1 {{operand element types differ: 'f32' and 'f16'}}
  %0 = kiln.matmul %a, %b : (tensor<2x4xf32>, tensor<4x3xf16>) -> tensor<2x3xf32>
  return
}

// -----

func.func @matmul_zero_dim(%a: tensor<f32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{operands must not be 0-d}}
  %0 = kiln.matmul %a, %b : (tensor<f32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @matmul_contract(%a: tensor<2x4xf32>, %b: tensor<5x3xf32>) {
  // expected-error @+1 {{contracting dims differ: 4 and 5}}
  %0 = kiln.matmul %a, %b : (tensor<2x4xf32>, tensor<5x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @matmul_batch(%a: tensor<2x3x4xf32>, %b: tensor<5x4x3xf32>) {
  // expected-error @+1 {{batch dims do not broadcast: [2] and [5]}}
  %0 = kiln.matmul %a, %b : (tensor<2x3x4xf32>, tensor<5x4x3xf32>) -> tensor<2x3x3xf32>
  return
}

// -----

func.func @matmul_result(%a: tensor<4xf32>, %b: tensor<4x3xf32>) {
  // A 1-d lhs contributes no row dim: [4] @ [4, 3] is [3].
  // expected-error @+1 {{result shape [1, 3] is incompatible with the expected shape [3]}}
  %0 = kiln.matmul %a, %b : (tensor<4xf32>, tensor<4x3xf32>) -> tensor<1x3xf32>
  return
}

// -----

// === embedding ===

func.func @embedding_weight(%w: tensor<100xf32>, %i: tensor<4xi64>) {
  // expected-error @+1 {{weight must be 2-d [num, dim], got rank 1}}
  %0 = kiln.embedding %w, %i : (tensor<100xf32>, tensor<4xi64>) -> tensor<4xf32>
  return
}

// -----

func.func @embedding_indices(%w: tensor<100x8xf32>, %i: tensor<4xf32>) {
  // expected-error @+1 {{indices must have an integer element type, got 'f32'}}
  %0 = kiln.embedding %w, %i : (tensor<100x8xf32>, tensor<4xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @embedding_result(%w: tensor<100x8xf32>, %i: tensor<1x4xi64>) {
  // expected-error @+1 {{result shape [4, 8] is incompatible with the expected shape [1, 4, 8]}}
  %0 = kiln.embedding %w, %i : (tensor<100x8xf32>, tensor<1x4xi64>) -> tensor<4x8xf32>
  return
}

// -----

// === index_select ===

func.func @index_select_index(%x: tensor<8x4xf32>, %i: tensor<3xi1>) {
  // expected-error @+1 {{'index' must have an integer element type, got 'i1'}}
  %0 = kiln.index_select %x, %i dim 0 : (tensor<8x4xf32>, tensor<3xi1>) -> tensor<3x4xf32>
  return
}

// -----

func.func @index_select_dim(%x: tensor<8x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'dim' 2 is out of range for rank 2}}
  %0 = kiln.index_select %x, %i dim 2 : (tensor<8x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  return
}

// -----

func.func @index_select_result(%x: tensor<8x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{result shape [3, 4] is incompatible with the expected shape [8, 3]}}
  %0 = kiln.index_select %x, %i dim 1 : (tensor<8x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  return
}

// -----

// === reshape ===

func.func @reshape_shape_operand(%x: tensor<2x8xf32>, %s: tensor<3xf32>) {
  // expected-error @+1 {{'shape' must be a 1-d integer tensor, got 'tensor<3xf32>'}}
  %0 = kiln.reshape %x, %s : (tensor<2x8xf32>, tensor<3xf32>) -> tensor<2x2x4xf32>
  return
}

// -----

func.func @reshape_rank(%x: tensor<2x8xf32>, %s: tensor<3xi64>) {
  // expected-error @+1 {{result rank 2 does not match the expected rank 3}}
  %0 = kiln.reshape %x, %s : (tensor<2x8xf32>, tensor<3xi64>) -> tensor<4x4xf32>
  return
}

// -----

func.func @reshape_count(%x: tensor<2x8xf32>, %s: tensor<2xi64>) {
  // expected-error @+1 {{element count changes: [2, 8] has 16, [4, 5] has 20}}
  %0 = kiln.reshape %x, %s : (tensor<2x8xf32>, tensor<2xi64>) -> tensor<4x5xf32>
  return
}

// -----

func.func @reshape_type(%x: tensor<2x8xf32>, %s: tensor<1xi64>) {
  // expected-error @+1 {{result element type 'f16' does not match the expected 'f32' (same as the input)}}
  %0 = kiln.reshape %x, %s : (tensor<2x8xf32>, tensor<1xi64>) -> tensor<16xf16>
  return
}

// -----

// === expand ===

func.func @expand_shape_operand(%x: tensor<1x4xf32>, %s: tensor<2x1xi64>) {
  // expected-error @+1 {{'shape' must be a 1-d integer tensor, got 'tensor<2x1xi64>'}}
  %0 = kiln.expand %x, %s : (tensor<1x4xf32>, tensor<2x1xi64>) -> tensor<3x4xf32>
  return
}

// -----

func.func @expand_rank(%x: tensor<1x4xf32>, %s: tensor<?xi64>) {
  // expected-error @+1 {{cannot expand rank 2 to the smaller rank 1}}
  %0 = kiln.expand %x, %s : (tensor<1x4xf32>, tensor<?xi64>) -> tensor<4xf32>
  return
}

// -----

func.func @expand_size(%x: tensor<2x4xf32>, %s: tensor<2xi64>) {
  // Only size-1 dims can grow.
  // expected-error @+1 {{input dim 0 of size 2 cannot expand to 3}}
  %0 = kiln.expand %x, %s : (tensor<2x4xf32>, tensor<2xi64>) -> tensor<3x4xf32>
  return
}

// -----

// === permute ===

func.func @permute_repeat(%x: tensor<2x3x4xf32>) {
  // -1 and 2 are the same dim.
  // expected-error @+1 {{'perm' [0, 2, -1] is not a permutation of rank 3}}
  %0 = kiln.permute %x perm [0, 2, -1] : (tensor<2x3x4xf32>) -> tensor<2x4x4xf32>
  return
}

// -----

func.func @permute_length(%x: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'perm' [1, 0] is not a permutation of rank 3}}
  %0 = kiln.permute %x perm [1, 0] : (tensor<2x3x4xf32>) -> tensor<3x2x4xf32>
  return
}

// -----

func.func @permute_result(%x: tensor<2x3x4xf32>) {
  // expected-error @+1 {{result shape [2, 3, 4] is incompatible with the expected shape [4, 2, 3]}}
  %0 = kiln.permute %x perm [2, 0, 1] : (tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

func.func @permute_unranked(%x: tensor<*xf32>) {
  // expected-error @+1 {{result rank 2 does not match the expected rank 3}}
  %0 = kiln.permute %x perm [2, 0, 1] : (tensor<*xf32>) -> tensor<2x3xf32>
  return
}

// -----

// === transpose ===

func.func @transpose_dim(%x: tensor<3x4xf32>) {
  // expected-error @+1 {{'dim1' 2 is out of range for rank 2 (expected [-2, 1])}}
  %0 = kiln.transpose %x dim0 0 dim1 2 : (tensor<3x4xf32>) -> tensor<4x3xf32>
  return
}

// -----

func.func @transpose_result(%x: tensor<3x4xf32>) {
  // expected-error @+1 {{result shape [3, 4] is incompatible with the expected shape [4, 3]}}
  %0 = kiln.transpose %x dim0 0 dim1 1 : (tensor<3x4xf32>) -> tensor<3x4xf32>
  return
}

// -----

// === unsqueeze ===

func.func @unsqueeze_dim(%x: tensor<4xf32>) {
  // A rank-1 input takes dims in [-2, 1].
  // expected-error @+1 {{'dim' 2 is out of range for rank 1 (expected [-2, 1])}}
  %0 = kiln.unsqueeze %x dim 2 : (tensor<4xf32>) -> tensor<4x1xf32>
  return
}

// -----

func.func @unsqueeze_result(%x: tensor<4xf32>) {
  // expected-error @+1 {{result shape [1, 4] is incompatible with the expected shape [4, 1]}}
  %0 = kiln.unsqueeze %x dim -1 : (tensor<4xf32>) -> tensor<1x4xf32>
  return
}

// -----

// === squeeze ===

func.func @squeeze_dim(%x: tensor<1x4xf32>) {
  // expected-error @+1 {{'dims' -3 is out of range for rank 2}}
  %0 = kiln.squeeze %x dims [-3] : (tensor<1x4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @squeeze_not_one(%x: tensor<1x4xf32>) {
  // A listed dim whose size is not 1 is kept, like PyTorch.
  // expected-error @+1 {{result shape [1] is incompatible with the expected shape [1, 4]}}
  %0 = kiln.squeeze %x dims [1] : (tensor<1x4xf32>) -> tensor<1xf32>
  return
}

// -----

// === flatten ===

func.func @flatten_order(%x: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'start_dim' 2 comes after 'end_dim' 1}}
  %0 = kiln.flatten %x start_dim 2 end_dim 1 : (tensor<2x3x4xf32>) -> tensor<24xf32>
  return
}

// -----

func.func @flatten_range(%x: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'end_dim' 3 is out of range for rank 3}}
  %0 = kiln.flatten %x start_dim 0 end_dim 3 : (tensor<2x3x4xf32>) -> tensor<24xf32>
  return
}

// -----

func.func @flatten_result(%x: tensor<2x3x4xf32>) {
  // expected-error @+1 {{result shape [6, 4] is incompatible with the expected shape [2, 12]}}
  %0 = kiln.flatten %x start_dim 1 end_dim 2 : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  return
}

// -----

// === slice ===

func.func @slice_start_type(%x: tensor<8xf32>, %s: tensor<f32>, %e: tensor<i64>) {
  // expected-error @+1 {{'start' must have an integer element type, got 'f32'}}
  %0 = kiln.slice %x, %s, %e dim 0 step 1 : (tensor<8xf32>, tensor<f32>, tensor<i64>) -> tensor<?xf32>
  return
}

// -----

func.func @slice_end_rank(%x: tensor<8xf32>, %s: tensor<i64>, %e: tensor<1xi64>) {
  // expected-error @+1 {{'end' must be a 0-d tensor, got rank 1}}
  %0 = kiln.slice %x, %s, %e dim 0 step 1 : (tensor<8xf32>, tensor<i64>, tensor<1xi64>) -> tensor<?xf32>
  return
}

// -----

func.func @slice_step(%x: tensor<8xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{'step' must be positive, got 0}}
  %0 = kiln.slice %x, %s, %s dim 0 step 0 : (tensor<8xf32>, tensor<i64>, tensor<i64>) -> tensor<?xf32>
  return
}

// -----

func.func @slice_zero_dim(%x: tensor<f32>, %s: tensor<i64>) {
  // expected-error @+1 {{cannot slice a 0-d tensor}}
  %0 = kiln.slice %x, %s, %s dim 0 step 1 : (tensor<f32>, tensor<i64>, tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @slice_grows(%x: tensor<2x8xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{result dim 1 of size 9 exceeds the input's 8}}
  %0 = kiln.slice %x, %s, %s dim 1 step 1 : (tensor<2x8xf32>, tensor<i64>, tensor<i64>) -> tensor<2x9xf32>
  return
}

// -----

func.func @slice_other_dim(%x: tensor<2x8xf32>, %s: tensor<i64>) {
  // Only the sliced dim may change.
  // expected-error @+1 {{result shape [3, 4] is incompatible with the expected shape [2, ?]}}
  %0 = kiln.slice %x, %s, %s dim 1 step 1 : (tensor<2x8xf32>, tensor<i64>, tensor<i64>) -> tensor<3x4xf32>
  return
}

// -----

// === select ===

func.func @select_index(%x: tensor<3x4xf32>, %i: tensor<2xi64>) {
  // expected-error @+1 {{'index' must be a 0-d tensor, got rank 1}}
  %0 = kiln.select %x, %i dim 0 : (tensor<3x4xf32>, tensor<2xi64>) -> tensor<4xf32>
  return
}

// -----

func.func @select_zero_dim(%x: tensor<f32>, %i: tensor<i64>) {
  // expected-error @+1 {{cannot select from a 0-d tensor}}
  %0 = kiln.select %x, %i dim 0 : (tensor<f32>, tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @select_result(%x: tensor<3x4xf32>, %i: tensor<i64>) {
  // expected-error @+1 {{result shape [3] is incompatible with the expected shape [4]}}
  %0 = kiln.select %x, %i dim 0 : (tensor<3x4xf32>, tensor<i64>) -> tensor<3xf32>
  return
}

// -----

// === split ===

func.func @split_no_mode(%x: tensor<8xf32>) {
  // expected-error @+1 {{needs exactly one of 'split_size', 'sizes' and 'chunks'}}
  %0:2 = kiln.split %x dim 0 : (tensor<8xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @split_two_modes(%x: tensor<8xf32>) {
  // expected-error @+1 {{needs exactly one of 'split_size', 'sizes' and 'chunks'}}
  %0:2 = kiln.split %x dim 0 split_size 4 chunks 2 : (tensor<8xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @split_no_result(%x: tensor<8xf32>) {
  // expected-error @+1 {{needs at least one result}}
  kiln.split %x dim 0 chunks 2 : (tensor<8xf32>) -> ()
  return
}

// -----

func.func @split_size_zero(%x: tensor<8xf32>) {
  // expected-error @+1 {{'split_size' must be positive, got 0}}
  %0:2 = kiln.split %x dim 0 split_size 0 : (tensor<8xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @split_chunks_zero(%x: tensor<8xf32>) {
  // expected-error @+1 {{'chunks' must be positive, got -1}}
  %0:2 = kiln.split %x dim 0 chunks -1 : (tensor<8xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @split_more_than_chunks(%x: tensor<?xf32>) {
  // expected-error @+1 {{has 3 results but only 2 chunks}}
  %0:3 = kiln.split %x dim 0 chunks 2 : (tensor<?xf32>) -> (tensor<?xf32>, tensor<?xf32>, tensor<?xf32>)
  return
}

// -----

func.func @split_sizes_count(%x: tensor<8xf32>) {
  // expected-error @+1 {{has 2 results but 3 sizes}}
  %0:2 = kiln.split %x dim 0 sizes [4, 2, 2] : (tensor<8xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @split_sizes_negative(%x: tensor<8xf32>) {
  // expected-error @+1 {{'sizes' [10, -2] has a negative entry}}
  %0:2 = kiln.split %x dim 0 sizes [10, -2] : (tensor<8xf32>) -> (tensor<?xf32>, tensor<?xf32>)
  return
}

// -----

func.func @split_type(%x: tensor<8xf32>) {
  // expected-error @+1 {{result element type 'f16' does not match the expected 'f32' (same as the input)}}
  %0:2 = kiln.split %x dim 0 chunks 2 : (tensor<8xf32>) -> (tensor<4xf32>, tensor<4xf16>)
  return
}

// -----

func.func @split_zero_dim(%x: tensor<f32>) {
  // expected-error @+1 {{cannot split a 0-d tensor}}
  %0 = kiln.split %x dim 0 chunks 1 : (tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @split_dim(%x: tensor<8xf32>) {
  // expected-error @+1 {{'dim' 1 is out of range for rank 1}}
  %0:2 = kiln.split %x dim 1 chunks 2 : (tensor<8xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @split_sizes_sum(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'sizes' [6, 3] sum to 9, but dim 1 has size 8}}
  %0:2 = kiln.split %x dim 1 sizes [6, 3] : (tensor<2x8xf32>) -> (tensor<2x6xf32>, tensor<2x3xf32>)
  return
}

// -----

func.func @split_count(%x: tensor<8xf32>) {
  // Pieces of 3 from 8 are 3, 3, 2: three results.
  // expected-error @+1 {{has 2 results, but dim 0 of size 8 splits into 3 pieces}}
  %0:2 = kiln.split %x dim 0 split_size 3 : (tensor<8xf32>) -> (tensor<3xf32>, tensor<5xf32>)
  return
}

// -----

func.func @split_chunk_count(%x: tensor<6xf32>) {
  // torch.chunk(6 elements, 4) gives pieces of ceil(6/4) = 2: three results.
  // expected-error @+1 {{has 4 results, but dim 0 of size 6 splits into 3 pieces}}
  %0:4 = kiln.split %x dim 0 chunks 4 : (tensor<6xf32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<0xf32>)
  return
}

// -----

func.func @split_piece_shape(%x: tensor<2x8xf32>) {
  // The last piece of split_size 3 along 8 is 2 wide.
  // expected-error @+1 {{result #2 shape [2, 3] is incompatible with the expected shape [2, 2]}}
  %0:3 = kiln.split %x dim 1 split_size 3 : (tensor<2x8xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>)
  return
}

// -----

// === concat ===

func.func @concat_empty() {
  // expected-error @+1 {{needs at least one operand}}
  %0 = kiln.concat dim 0 : () -> tensor<0xf32>
  return
}

// -----

func.func @concat_ranks(%a: tensor<2x3xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{operands have different ranks: 2 and 1}}
  %0 = kiln.concat %a, %b dim 0 : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<3x3xf32>
  return
}

// -----

func.func @concat_promotion(%a: tensor<2xf32>, %b: tensor<2xi64>) {
  // expected-error @+1 {{result element type 'i64' does not match the expected 'f32' (PyTorch promotion of the operands)}}
  %0 = kiln.concat %a, %b dim 0 : (tensor<2xf32>, tensor<2xi64>) -> tensor<4xi64>
  return
}

// -----

func.func @concat_zero_dim(%a: tensor<f32>) {
  // expected-error @+1 {{cannot concatenate 0-d tensors}}
  %0 = kiln.concat %a, %a dim 0 : (tensor<f32>, tensor<f32>) -> tensor<2xf32>
  return
}

// -----

func.func @concat_other_dim(%a: tensor<2x3xf32>, %b: tensor<4x5xf32>) {
  // expected-error @+1 {{operand dim 0 sizes differ: 2 and 4}}
  %0 = kiln.concat %a, %b dim 1 : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @concat_result(%a: tensor<2x3xf32>, %b: tensor<2x5xf32>) {
  // expected-error @+1 {{result shape [2, 9] is incompatible with the expected shape [2, 8]}}
  %0 = kiln.concat %a, %b dim 1 : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x9xf32>
  return
}

// -----

// === stack ===

func.func @stack_empty() {
  // expected-error @+1 {{needs at least one operand}}
  %0 = kiln.stack dim 0 : () -> tensor<0xi64>
  return
}

// -----

func.func @stack_shapes(%a: tensor<2xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{operand shapes differ: [2] and [3]}}
  %0 = kiln.stack %a, %b dim 0 : (tensor<2xf32>, tensor<3xf32>) -> tensor<2x2xf32>
  return
}

// -----

func.func @stack_dim(%n: tensor<i64>) {
  // Stacking 0-d tensors takes dim 0 or -1 only.
  // expected-error @+1 {{'dim' 1 is out of range for rank 0 (expected [-1, 0])}}
  %0 = kiln.stack %n, %n dim 1 : (tensor<i64>, tensor<i64>) -> tensor<2xi64>
  return
}

// -----

func.func @stack_result(%n: tensor<i64>) {
  // expected-error @+1 {{result shape [3] is incompatible with the expected shape [2]}}
  %0 = kiln.stack %n, %n dim 0 : (tensor<i64>, tensor<i64>) -> tensor<3xi64>
  return
}

// -----

// === repeat_interleave ===

func.func @repeat_interleave_repeats(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'repeats' must be positive, got 0}}
  %0 = kiln.repeat_interleave %x repeats 0 dim 0 : (tensor<2x4xf32>) -> tensor<0x4xf32>
  return
}

// -----

func.func @repeat_interleave_result(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{result shape [2, 4] is incompatible with the expected shape [2, 8]}}
  %0 = kiln.repeat_interleave %x repeats 2 dim 1 : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// === repeat ===

func.func @repeat_negative(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'repeats' [1, -1] has a negative entry}}
  %0 = kiln.repeat %x repeats [1, -1] : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @repeat_too_few(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'repeats' has 1 entries, fewer than the input rank 2}}
  %0 = kiln.repeat %x repeats [2] : (tensor<2x4xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @repeat_result(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{result shape [2, 4] is incompatible with the expected shape [4, 4]}}
  %0 = kiln.repeat %x repeats [2, 1] : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// === triangular ===

func.func @triangular_rank(%x: tensor<4xf32>) {
  // expected-error @+1 {{needs an input of rank at least 2, got 1}}
  %0 = kiln.triangular %x upper true diagonal 0 : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

// === arange ===

func.func @arange_operand(%n: tensor<1xi64>, %s: tensor<i64>) {
  // expected-error @+1 {{'end' must be a 0-d tensor, got rank 1}}
  %0 = kiln.arange %s, %n, %s dtype "i64" : (tensor<i64>, tensor<1xi64>, tensor<i64>) -> tensor<?xi64>
  return
}

// -----

func.func @arange_dtype(%s: tensor<i64>) {
  // expected-error @+1 {{unknown dtype "int64"; expected one of: f32 i64 i1 i32 f16 bf16}}
  %0 = kiln.arange %s, %s, %s dtype "int64" : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  return
}

// -----

func.func @arange_result_type(%s: tensor<i64>) {
  // expected-error @+1 {{result element type 'f32' does not match the expected 'i64' (the dtype attribute)}}
  %0 = kiln.arange %s, %s, %s dtype "i64" : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xf32>
  return
}

// -----

func.func @arange_rank(%s: tensor<i64>) {
  // expected-error @+1 {{result rank 2 does not match the expected rank 1}}
  %0 = kiln.arange %s, %s, %s dtype "i64" : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?x?xi64>
  return
}

// -----

// === full ===

func.func @full_shape_operand(%s: tensor<i64>) {
  // expected-error @+1 {{'shape' must be a 1-d integer tensor, got 'tensor<i64>'}}
  %0 = kiln.full %s value 0.0 dtype "f32" : (tensor<i64>) -> tensor<*xf32>
  return
}

// -----

func.func @full_dtype(%s: tensor<2xi64>) {
  // expected-error @+1 {{unknown dtype ""; expected one of: f32 i64 i1 i32 f16 bf16}}
  %0 = kiln.full %s value 0.0 dtype "" : (tensor<2xi64>) -> tensor<?x?xf32>
  return
}

// -----

func.func @full_rank(%s: tensor<2xi64>) {
  // expected-error @+1 {{result rank 3 does not match the expected rank 2}}
  %0 = kiln.full %s value 0.0 dtype "f32" : (tensor<2xi64>) -> tensor<?x?x?xf32>
  return
}

// -----

// === full_like ===

func.func @full_like_default_dtype(%x: tensor<4xf32>) {
  // expected-error @+1 {{result element type 'i64' does not match the expected 'f32' (same as the input when dtype is empty)}}
  %0 = kiln.full_like %x value 1.0 dtype "" : (tensor<4xf32>) -> tensor<4xi64>
  return
}

// -----

func.func @full_like_dtype(%x: tensor<4xf32>) {
  // expected-error @+1 {{unknown dtype "float"; expected one of: f32 i64 i1 i32 f16 bf16}}
  %0 = kiln.full_like %x value 1.0 dtype "float" : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @full_like_shape(%x: tensor<4xf32>) {
  // expected-error @+1 {{result shape [5] is incompatible with the expected shape [4]}}
  %0 = kiln.full_like %x value 1.0 dtype "i1" : (tensor<4xf32>) -> tensor<5xi1>
  return
}

// -----

// === dim_size ===

func.func @dim_size_type(%x: tensor<4xf32>) {
  // expected-error @+1 {{result element type 'i32' does not match the expected 'i64' (sizes are i64)}}
  %0 = kiln.dim_size %x dim 0 : (tensor<4xf32>) -> tensor<i32>
  return
}

// -----

func.func @dim_size_rank(%x: tensor<4xf32>) {
  // Sizes are 0-d tensors.
  // expected-error @+1 {{result rank 1 does not match the expected rank 0}}
  %0 = kiln.dim_size %x dim 0 : (tensor<4xf32>) -> tensor<1xi64>
  return
}

// -----

func.func @dim_size_zero_dim(%x: tensor<f32>) {
  // expected-error @+1 {{cannot take a dim size of a 0-d tensor}}
  %0 = kiln.dim_size %x dim 0 : (tensor<f32>) -> tensor<i64>
  return
}

// -----

func.func @dim_size_dim(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'dim' 2 is out of range for rank 2}}
  %0 = kiln.dim_size %x dim 2 : (tensor<2x4xf32>) -> tensor<i64>
  return
}

// -----

// === shape_of ===

func.func @shape_of_type(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{result element type 'i32' does not match the expected 'i64' (sizes are i64)}}
  %0 = kiln.shape_of %x : (tensor<2x4xf32>) -> tensor<2xi32>
  return
}

// -----

func.func @shape_of_rank(%x: tensor<*xf32>) {
  // expected-error @+1 {{result rank 0 does not match the expected rank 1}}
  %0 = kiln.shape_of %x : (tensor<*xf32>) -> tensor<i64>
  return
}

// -----

func.func @shape_of_length(%x: tensor<2x4xf32>) {
  // One entry per dim of the input.
  // expected-error @+1 {{result shape [3] is incompatible with the expected shape [2]}}
  %0 = kiln.shape_of %x : (tensor<2x4xf32>) -> tensor<3xi64>
  return
}

// -----

// === copy ===

func.func @copy_type(%x: tensor<4xf32>) {
  // expected-error @+1 {{result element type 'f16' does not match the expected 'f32' (same as the input)}}
  %0 = kiln.copy %x : (tensor<4xf32>) -> tensor<4xf16>
  return
}

// -----

func.func @copy_shape(%x: tensor<4xf32>) {
  // expected-error @+1 {{result shape [2, 2] is incompatible with the expected shape [4]}}
  %0 = kiln.copy %x : (tensor<4xf32>) -> tensor<2x2xf32>
  return
}

// -----

func.func @cast_like_type(%x: tensor<4xf32>, %like: tensor<*xi64>) {
  // expected-error @+1 {{result element type 'f32' does not match the expected 'i64' (the element type of 'like')}}
  %0 = kiln.cast_like %x, %like : (tensor<4xf32>, tensor<*xi64>) -> tensor<4xf32>
  return
}
