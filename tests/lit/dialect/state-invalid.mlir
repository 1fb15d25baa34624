// Verifier messages of the program state ops.
// RUN: kiln-opt %s --split-input-file --verify-diagnostics

func.func @state_empty_name() {
  // expected-error @+1 {{'name' must not be empty}}
  %0 = kiln.state "" : tensor<2xf32>
  return
}

// -----

func.func @state_dynamic() {
  // expected-error @+1 {{must be statically shaped tensor}}
  %0 = kiln.state "s" : tensor<?xf32>
  return
}

// -----

func.func @write_not_state(%s: tensor<4x2xf32>, %p: tensor<1xi64>, %r: tensor<1x2xf32>) {
  // expected-error @+1 {{'state' must be the result of kiln.state or kiln.cache_write}}
  %0 = kiln.cache_write %s[%p], %r dim 0 : (tensor<4x2xf32>, tensor<1xi64>, tensor<1x2xf32>) -> tensor<4x2xf32>
  return
}

// -----

func.func @write_shape(%p: tensor<1xi64>, %r: tensor<1x3xf32>) {
  %s = kiln.state "s" : tensor<4x2xf32>
  // expected-error @+1 {{'values' shape [1, 3] differs from the state shape [4, 2] outside dim 0}}
  %0 = kiln.cache_write %s[%p], %r dim 0 : (tensor<4x2xf32>, tensor<1xi64>, tensor<1x3xf32>) -> tensor<4x2xf32>
  return
}

// -----

func.func @write_count(%p: tensor<2xi64>, %r: tensor<1x2xf32>) {
  %s = kiln.state "s" : tensor<4x2xf32>
  // expected-error @+1 {{2 positions for 1 rows of 'values' along dim 0}}
  %0 = kiln.cache_write %s[%p], %r dim 0 : (tensor<4x2xf32>, tensor<2xi64>, tensor<1x2xf32>) -> tensor<4x2xf32>
  return
}

// -----

// (A float state may be written from another float type; an integer one not.)
func.func @write_dtype(%p: tensor<1xi64>, %r: tensor<1x2xi32>) {
  %s = kiln.state "s" : tensor<4x2xf32>
  // expected-error @+1 {{'values' element type 'i32' differs from the state's 'f32'}}
  %0 = kiln.cache_write %s[%p], %r dim 0 : (tensor<4x2xf32>, tensor<1xi64>, tensor<1x2xi32>) -> tensor<4x2xf32>
  return
}

// -----

func.func @write_dtype_int_state(%p: tensor<1xi64>, %r: tensor<1x2xf32>) {
  %s = kiln.state "s" : tensor<4x2xi64>
  // expected-error @+1 {{'values' element type 'f32' differs from the state's 'i64'}}
  %0 = kiln.cache_write %s[%p], %r dim 0 : (tensor<4x2xi64>, tensor<1xi64>, tensor<1x2xf32>) -> tensor<4x2xi64>
  return
}

// -----

func.func @write_dim(%p: tensor<1xi64>, %r: tensor<1x2xf32>) {
  %s = kiln.state "s" : tensor<4x2xf32>
  // expected-error @+1 {{'dim' 2 is out of range for rank 2}}
  %0 = kiln.cache_write %s[%p], %r dim 2 : (tensor<4x2xf32>, tensor<1xi64>, tensor<1x2xf32>) -> tensor<4x2xf32>
  return
}

// -----

func.func @attn_cache_types(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x16x8xf16>, %v: tensor<1x2x16x8xf32>, %p: tensor<1xi64>) {
  // expected-error @+1 {{'v_cache' element type 'f32' differs from 'k_cache' element type 'f16'}}
  %0 = kiln.cached_attention %q, %k, %v, %p scale 1.0 : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xf16>, tensor<1x2x16x8xf32>, tensor<1xi64>) -> tensor<1x4x1x8xf32>
  return
}

// -----

func.func @attn_cache_int(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x16x8xi8>, %p: tensor<1xi64>) {
  // expected-error @+1 {{'k_cache' must be a float tensor, got 'i8'}}
  %0 = kiln.cached_attention %q, %k, %k, %p scale 1.0 : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xi8>, tensor<1x2x16x8xi8>, tensor<1xi64>) -> tensor<1x4x1x8xf32>
  return
}

// -----

func.func @attn_heads(%q: tensor<1x3x1x8xf32>, %k: tensor<1x2x16x8xf32>, %p: tensor<1xi64>) {
  // expected-error @+1 {{query heads 3 are not a multiple of the kv heads 2}}
  %0 = kiln.cached_attention %q, %k, %k, %p scale 1.0 : (tensor<1x3x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<1xi64>) -> tensor<1x3x1x8xf32>
  return
}

// -----

func.func @attn_head_dim(%q: tensor<1x4x1x4xf32>, %k: tensor<1x2x16x8xf32>, %p: tensor<1xi64>) {
  // expected-error @+1 {{differ in batch or head dim}}
  %0 = kiln.cached_attention %q, %k, %k, %p scale 1.0 : (tensor<1x4x1x4xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<1xi64>) -> tensor<1x4x1x4xf32>
  return
}

// -----

func.func @attn_start(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x16x8xf32>, %p: tensor<2xi64>) {
  // expected-error @+1 {{'start_pos' must have shape [1], got [2]}}
  %0 = kiln.cached_attention %q, %k, %k, %p scale 1.0 : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<2xi64>) -> tensor<1x4x1x8xf32>
  return
}

// -----

func.func @attn_start_dtype(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x16x8xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'start_pos' must be i64, got 'i32'}}
  %0 = kiln.cached_attention %q, %k, %k, %p scale 1.0 : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<1xi32>) -> tensor<1x4x1x8xf32>
  return
}

// -----

func.func @attn_rank(%q: tensor<4x1x8xf32>, %k: tensor<1x2x16x8xf32>, %p: tensor<1xi64>) {
  // expected-error @+1 {{'q' must be 4-d, got rank 3}}
  %0 = kiln.cached_attention %q, %k, %k, %p scale 1.0 : (tensor<4x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<1xi64>) -> tensor<4x1x8xf32>
  return
}
