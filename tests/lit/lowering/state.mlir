// Program state in the portable lowering: one StateDecl per kiln.state name,
// shared by the methods; each method has one State value per state, which
// cache_write reads and writes in place (input 0 and output are the same value).
// A returned state is copied into an Output. States get no arena offset.
// RUN: kiln-portable-translate %s -o %t.kiln --dump | FileCheck %s
// RUN: kiln-runtime inspect %t.kiln | FileCheck %s --check-prefix=INSPECT

// CHECK:      state 0 cache
// CHECK-NOT:  state 1
// CHECK:      method prefill inputs (0, 1) outputs (3)
// CHECK:        value 2 "cache" f32 [8, 4] state state 0
// CHECK:        inst 0 cache_write (2, 0, 1) -> (2) {dim = 0}
// CHECK-NEXT:   inst 1 unary (2) -> (3) {fn = "neg"}
// CHECK:      method decode inputs (0, 1) outputs (3)
// CHECK:        value 2 "cache" f32 [8, 4] state state 0
// CHECK:        inst 0 cache_write (2, 0, 1) -> (2) {dim = 0}
// CHECK-NEXT:   inst 1 copy (2) -> (3)
// INSPECT: state cache: f32[8,4] (128 bytes)
func.func @prefill(%p: tensor<2xi64>, %r: tensor<2x4xf32>) -> tensor<8x4xf32> {
  %s = kiln.state "cache" : tensor<8x4xf32>
  %w = kiln.cache_write %s[%p], %r dim 0 : (tensor<8x4xf32>, tensor<2xi64>, tensor<2x4xf32>) -> tensor<8x4xf32>
  %n = kiln.unary "neg" %w : (tensor<8x4xf32>) -> tensor<8x4xf32>
  return %n : tensor<8x4xf32>
}
func.func @decode(%p: tensor<1xi64>, %r: tensor<1x4xf32>) -> tensor<8x4xf32> {
  %s = kiln.state "cache" : tensor<8x4xf32>
  %w = kiln.cache_write %s[%p], %r dim 0 : (tensor<8x4xf32>, tensor<1xi64>, tensor<1x4xf32>) -> tensor<8x4xf32>
  return %w : tensor<8x4xf32>
}
