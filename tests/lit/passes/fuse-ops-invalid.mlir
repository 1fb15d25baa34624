// Every verifier message of the fused ops (swiglu, rope, attention).
// RUN: kiln-opt %s --split-input-file --verify-diagnostics

func.func @swiglu_int(%g: tensor<4xi64>, %u: tensor<4xi64>) {
  // expected-error @+1 {{'gate' must be a float tensor, got 'i64'}}
  %0 = kiln.swiglu %g, %u : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>
  return
}

// -----

func.func @swiglu_mixed(%g: tensor<4xf32>, %u: tensor<4xf16>) {
  // expected-error @+1 {{'up' element type 'f16' differs from 'gate' element type 'f32'}}
  %0 = kiln.swiglu %g, %u : (tensor<4xf32>, tensor<4xf16>) -> tensor<4xf32>
  return
}

// -----

func.func @swiglu_shape(%g: tensor<4xf32>, %u: tensor<3xf32>) {
  // expected-error @+1 {{operand shapes do not broadcast: [4] and [3]}}
  %0 = kiln.swiglu %g, %u : (tensor<4xf32>, tensor<3xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @swiglu_result(%g: tensor<2x4xf32>, %u: tensor<4xf32>) {
  // expected-error @+1 {{result shape [4] is incompatible with the expected shape [2, 4]}}
  %0 = kiln.swiglu %g, %u : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @rope_style(%x: tensor<6x8xf32>, %c: tensor<6x8xf32>) {
  // expected-error @+1 {{unknown fn "neox"; expected one of: rotate_half interleaved}}
  %0 = kiln.rope %x, %c, %c style "neox" : (tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  return
}

// -----

func.func @rope_result_type(%x: tensor<6x8xf32>, %c: tensor<6x8xf32>) {
  // expected-error @+1 {{result element type 'f16' does not match the expected 'f32' (same as the operands)}}
  %0 = kiln.rope %x, %c, %c style "rotate_half" : (tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf16>
  return
}

// -----

func.func @rope_scalar(%x: tensor<f32>, %c: tensor<f32>) {
  // expected-error @+1 {{'x' must have rank at least 1}}
  %0 = kiln.rope %x, %c, %c style "rotate_half" : (tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @rope_odd_interleaved(%x: tensor<6x7xf32>, %c: tensor<6x7xf32>) {
  // expected-error @+1 {{interleaved style needs an even last dim, got 7}}
  %0 = kiln.rope %x, %c, %c style "interleaved" : (tensor<6x7xf32>, tensor<6x7xf32>, tensor<6x7xf32>) -> tensor<6x7xf32>
  return
}

// -----

func.func @rope_broadcast_last(%x: tensor<6x1xf32>, %c: tensor<6x8xf32>) {
  // expected-error @+1 {{the last dim of 'x' (1) must not be broadcast (to 8)}}
  %0 = kiln.rope %x, %c, %c style "rotate_half" : (tensor<6x1xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  return
}

// -----

func.func @attention_rank(%q: tensor<4x6x8xf32>, %k: tensor<1x2x6x8xf32>) {
  // expected-error @+1 {{'q' must be 4-d, got rank 3}}
  %0 = kiln.attention %q, %k, %k scale 1.0 causal true : (tensor<4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) -> tensor<*xf32>
  return
}

// -----

func.func @attention_heads(%q: tensor<1x3x6x8xf32>, %k: tensor<1x2x6x8xf32>) {
  // expected-error @+1 {{query heads 3 are not a multiple of the kv heads 2}}
  %0 = kiln.attention %q, %k, %k scale 1.0 causal true : (tensor<1x3x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) -> tensor<1x3x6x8xf32>
  return
}

// -----

func.func @attention_head_dim(%q: tensor<1x4x6x8xf32>, %k: tensor<1x2x6x4xf32>) {
  // expected-error @+1 {{q and k head dims differ: 8 and 4}}
  %0 = kiln.attention %q, %k, %k scale 1.0 causal true : (tensor<1x4x6x8xf32>, tensor<1x2x6x4xf32>, tensor<1x2x6x4xf32>) -> tensor<1x4x6x4xf32>
  return
}

// -----

func.func @attention_kv(%q: tensor<1x4x6x8xf32>, %k: tensor<1x2x6x8xf32>, %v: tensor<1x2x5x8xf32>) {
  // expected-error @+1 {{k and v differ in heads or length: [1, 2, 6, 8] and [1, 2, 5, 8]}}
  %0 = kiln.attention %q, %k, %v scale 1.0 causal true : (tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x5x8xf32>) -> tensor<1x4x6x8xf32>
  return
}

// -----

func.func @attention_batch(%q: tensor<2x4x6x8xf32>, %k: tensor<3x2x6x8xf32>) {
  // expected-error @+1 {{batch sizes do not broadcast: [2, 3, 3]}}
  %0 = kiln.attention %q, %k, %k scale 1.0 causal true : (tensor<2x4x6x8xf32>, tensor<3x2x6x8xf32>, tensor<3x2x6x8xf32>) -> tensor<*xf32>
  return
}

// -----

func.func @attention_result(%q: tensor<1x4x6x8xf32>, %k: tensor<1x2x6x8xf32>, %v: tensor<1x2x6x16xf32>) {
  // expected-error @+1 {{result shape [1, 4, 6, 8] is incompatible with the expected shape [1, 4, 6, 16]}}
  %0 = kiln.attention %q, %k, %v scale 1.0 causal true : (tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x16xf32>) -> tensor<1x4x6x8xf32>
  return
}

// -----

func.func @attention_result_rank(%q: tensor<*xf32>) {
  // expected-error @+1 {{result rank 3 does not match the expected rank 4}}
  %0 = kiln.attention %q, %q, %q scale 1.0 causal true : (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>) -> tensor<4x6x8xf32>
  return
}

// -----

func.func @attention_mask_type(%q: tensor<*xf32>, %m: tensor<6x6xi64>) {
  // expected-error @+1 {{'mask' must be a bool or float tensor, got 'i64'}}
  %0 = kiln.attention %q, %q, %q mask %m scale 1.0 causal false : (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>, tensor<6x6xi64>) -> tensor<*xf32>
  return
}

// -----

func.func @attention_mask_rank(%q: tensor<*xf32>, %m: tensor<1x1x1x6x6xi1>) {
  // expected-error @+1 {{'mask' must have rank at most 4, got 5}}
  %0 = kiln.attention %q, %q, %q mask %m scale 1.0 causal false : (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>, tensor<1x1x1x6x6xi1>) -> tensor<*xf32>
  return
}

// -----

func.func @attention_int(%q: tensor<*xi64>) {
  // expected-error @+1 {{'q' must be a float tensor, got 'i64'}}
  %0 = kiln.attention %q, %q, %q scale 1.0 causal false : (tensor<*xi64>, tensor<*xi64>, tensor<*xi64>) -> tensor<*xi64>
  return
}

// -----

func.func @attention_nan_scale(%q: tensor<*xf32>) {
  // expected-error @+1 {{'scale' must be a number}}
  %0 = kiln.attention %q, %q, %q scale 0x7FF8000000000000 causal false : (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return
}

// -----

func.func @matmul_transpose_b_vector(%a: tensor<2x4xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{transpose_b needs 'b' of rank at least 2, got 1}}
  %0 = kiln.matmul %a, %b {transpose_b = true} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @matmul_transpose_b_contract(%a: tensor<2x4xf32>, %b: tensor<4x5xf32>) {
  // With b read as [5, 4], the contracting dims are 4 and 5.
  // expected-error @+1 {{contracting dims differ: 4 and 5}}
  %0 = kiln.matmul %a, %b {transpose_b = true} : (tensor<2x4xf32>, tensor<4x5xf32>) -> tensor<2x4xf32>
  return
}
