// Every verifier message of kiln.rope_perm (the first function: forms that verify).
// RUN: kiln-opt %s --split-input-file --verify-diagnostics

func.func @rope_perm_ok(%x: tensor<1x4x6x4xf32>, %c: tensor<6x4xf32>, %u: tensor<*xf16>, %cu: tensor<*xf16>) {
  %0 = kiln.rope_perm %x, %c, %c perm [2, 3, 0, 1] : (tensor<1x4x6x4xf32>, tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<1x4x6x4xf32>
  %1 = kiln.rope_perm %u, %cu, %cu perm [1, 0] : (tensor<*xf16>, tensor<*xf16>, tensor<*xf16>) -> tensor<*xf16>
  return
}

// -----

func.func @rope_perm_int(%x: tensor<6x4xi64>) {
  // expected-error @+1 {{'x' must be a float tensor, got 'i64'}}
  %0 = kiln.rope_perm %x, %x, %x perm [1, 0, 3, 2] : (tensor<6x4xi64>, tensor<6x4xi64>, tensor<6x4xi64>) -> tensor<6x4xi64>
  return
}

// -----

func.func @rope_perm_result_type(%x: tensor<6x4xf32>) {
  // expected-error @+1 {{result element type 'f16' does not match the expected 'f32' (same as the operands)}}
  %0 = kiln.rope_perm %x, %x, %x perm [1, 0, 3, 2] : (tensor<6x4xf32>, tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<6x4xf16>
  return
}

// -----

func.func @rope_perm_duplicate(%x: tensor<6x4xf32>) {
  // expected-error @+1 {{'perm' [1, 1, 3, 2] is not a permutation of 0..3}}
  %0 = kiln.rope_perm %x, %x, %x perm [1, 1, 3, 2] : (tensor<6x4xf32>, tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @rope_perm_negative(%x: tensor<6x4xf32>) {
  // expected-error @+1 {{'perm' [-1, 0, 1, 2] is not a permutation of 0..3}}
  %0 = kiln.rope_perm %x, %x, %x perm [-1, 0, 1, 2] : (tensor<6x4xf32>, tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @rope_perm_empty(%x: tensor<*xf32>) {
  // expected-error @+1 {{'perm' must not be empty}}
  %0 = kiln.rope_perm %x, %x, %x perm [] : (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return
}

// -----

func.func @rope_perm_length(%x: tensor<6x4xf32>) {
  // expected-error @+1 {{'perm' has 2 entries but the last dim of 'x' is 4}}
  %0 = kiln.rope_perm %x, %x, %x perm [1, 0] : (tensor<6x4xf32>, tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @rope_perm_scalar(%x: tensor<f32>) {
  // expected-error @+1 {{'x' must have rank at least 1}}
  %0 = kiln.rope_perm %x, %x, %x perm [0] : (tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @rope_perm_broadcast_last(%x: tensor<6x1xf32>, %c: tensor<6x4xf32>) {
  // expected-error @+1 {{the last dim of 'x' (1) must not be broadcast (to 4)}}
  %0 = kiln.rope_perm %x, %c, %c perm [0] : (tensor<6x1xf32>, tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<6x4xf32>
  return
}

// -----

func.func @rope_perm_result_shape(%x: tensor<6x4xf32>) {
  // expected-error @+1 {{result shape}}
  %0 = kiln.rope_perm %x, %x, %x perm [1, 0, 3, 2] : (tensor<6x4xf32>, tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<5x4xf32>
  return
}
