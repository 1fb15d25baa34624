// The whole pass pipeline leaves program state alone: fusion, weight dedup and
// quantization touch only their patterns and kiln.constant weights (the linear
// weight below is quantized; the caches are not), and nothing drops or moves a
// cache write.
// RUN: kiln-opt %s --canonicalize --cse --kiln-fuse --canonicalize --kiln-dedup-weights --kiln-quantize=mode=int8 --kiln-plan-memory | FileCheck %s

// CHECK-LABEL: func.func @decode(
// CHECK:         %[[W:.+]] = kiln.qconstant
// CHECK:         %[[KC:.+]] = kiln.state "k_cache_0" : tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[VC:.+]] = kiln.state "v_cache_0" : tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[K1:.+]] = kiln.cache_write %[[KC]][%arg3], %arg1 dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[V1:.+]] = kiln.cache_write %[[VC]][%arg3], %arg2 dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[O:.+]] = kiln.cached_attention %arg0, %[[K1]], %[[V1]], %arg3 scale {{.*}}kiln.arena_offsets
// CHECK:         kiln.linear {{.*}}%[[W]]
func.func @decode(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>, %p: tensor<1xi64>) -> tensor<1x32xf32> {
  %w = kiln.constant dense<0.5> : tensor<32x32xf32>
  %kc = kiln.state "k_cache_0" : tensor<1x2x16x8xf32>
  %vc = kiln.state "v_cache_0" : tensor<1x2x16x8xf32>
  %k1 = kiln.cache_write %kc[%p], %k dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf32>
  %v1 = kiln.cache_write %vc[%p], %v dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf32>
  %o = kiln.cached_attention %q, %k1, %v1, %p scale 0.35355339059327379 : (tensor<1x4x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>, tensor<1xi64>) -> tensor<1x4x1x8xf32>
  %s = kiln.constant dense<[1, 32]> : tensor<2xi64>
  %r = kiln.reshape %o, %s : (tensor<1x4x1x8xf32>, tensor<2xi64>) -> tensor<1x32xf32>
  %y = kiln.linear %r, %w : (tensor<1x32xf32>, tensor<32x32xf32>) -> tensor<1x32xf32>
  return %y : tensor<1x32xf32>
}
