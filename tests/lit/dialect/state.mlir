// Program state ops (docs/llm.md): kiln.state, kiln.cache_write and
// kiln.cached_attention round trip (custom and generic form), and the passes
// that clean up never drop, merge or reorder a cache write.
// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt %s --mlir-print-op-generic | kiln-opt | FileCheck %s
// RUN: kiln-opt %s --canonicalize --cse | FileCheck %s --check-prefix=CLEAN

// CHECK-LABEL: func.func @decode(
// CHECK-SAME:    %[[Q:[^:]+]]: tensor<1x4x1x8xf32>, %[[K:[^:]+]]: tensor<1x2x1x8xf32>, %[[V:[^:]+]]: tensor<1x2x1x8xf32>, %[[P:[^:]+]]: tensor<1xi64>
// CHECK-NEXT:    %[[KC:[^ ]+]] = kiln.state "k_cache_0" : tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[VC:[^ ]+]] = kiln.state "v_cache_0" : tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[K1:[^ ]+]] = kiln.cache_write %[[KC]][%[[P]]], %[[K]] dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[V1:[^ ]+]] = kiln.cache_write %[[VC]][%[[P]]], %[[V]] dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[O:[^ ]+]] = kiln.cached_attention %[[Q]], %[[K1]], %[[V1]], %[[P]] scale 0.35355339059327379 : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<1xi64>) -> tensor<1x4x1x8xf32>
// CHECK-NEXT:    return %[[O]]
func.func @decode(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>, %p: tensor<1xi64>) -> tensor<1x4x1x8xf32> {
  %kc = kiln.state "k_cache_0" : tensor<1x2x16x8xf32>
  %vc = kiln.state "v_cache_0" : tensor<1x2x16x8xf32>
  %k1 = kiln.cache_write %kc[%p], %k dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf32>
  %v1 = kiln.cache_write %vc[%p], %v dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf32>
  %o = kiln.cached_attention %q, %k1, %v1, %p scale 0.35355339059327379 : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<1xi64>) -> tensor<1x4x1x8xf32>
  return %o : tensor<1x4x1x8xf32>
}

// f16 caches for f32 queries (kiln export-hf --kv-cache-dtype f16).
// CHECK-LABEL: func.func @decode_f16_cache
// CHECK:         kiln.cached_attention {{.*}} : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xf16>, tensor<1x2x16x8xf16>, tensor<1xi64>) -> tensor<1x4x1x8xf32>
func.func @decode_f16_cache(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x1x8xf16>, %v: tensor<1x2x1x8xf16>, %p: tensor<1xi64>) -> tensor<1x4x1x8xf32> {
  %kc = kiln.state "k_cache_0" : tensor<1x2x16x8xf16>
  %vc = kiln.state "v_cache_0" : tensor<1x2x16x8xf16>
  %k1 = kiln.cache_write %kc[%p], %k dim 2 : (tensor<1x2x16x8xf16>, tensor<1xi64>, tensor<1x2x1x8xf16>) -> tensor<1x2x16x8xf16>
  %v1 = kiln.cache_write %vc[%p], %v dim 2 : (tensor<1x2x16x8xf16>, tensor<1xi64>, tensor<1x2x1x8xf16>) -> tensor<1x2x16x8xf16>
  %o = kiln.cached_attention %q, %k1, %v1, %p scale 0.35355339059327379 : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xf16>, tensor<1x2x16x8xf16>, tensor<1xi64>) -> tensor<1x4x1x8xf32>
  return %o : tensor<1x4x1x8xf32>
}

// A write whose result is unused is still a write: canonicalize and CSE keep
// it (memory effects). Two reads of one state around a write are not merged;
// two reads with no write between them are. An unused read goes away.
// CHECK-LABEL: func.func @effects(
// CLEAN-LABEL: func.func @effects(
// CLEAN-NEXT:    %[[S0:[^ ]+]] = kiln.state "s" : tensor<4x2xf32>
// CLEAN-NEXT:    kiln.cache_write %[[S0]]
// CLEAN-NEXT:    %[[S1:[^ ]+]] = kiln.state "s" : tensor<4x2xf32>
// CLEAN-NEXT:    return %[[S0]], %[[S1]], %[[S1]]
func.func @effects(%pos: tensor<1xi64>, %row: tensor<1x2xf32>) -> (tensor<4x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>) {
  %unused = kiln.state "t" : tensor<3xf32>
  %a = kiln.state "s" : tensor<4x2xf32>
  %w = kiln.cache_write %a[%pos], %row dim 0 : (tensor<4x2xf32>, tensor<1xi64>, tensor<1x2xf32>) -> tensor<4x2xf32>
  %b = kiln.state "s" : tensor<4x2xf32>
  %c = kiln.state "s" : tensor<4x2xf32>
  return %a, %b, %c : tensor<4x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>
}
