// A write's result read after a second write to the same state is stale too.
// RUN: not kiln-portable-translate %s -o %t.kiln 2>&1 | FileCheck %s
// RUN: not test -e %t.kiln

// CHECK: state-order-write.mlir:10:8: error: cannot lower 'kiln.unary': it reads state 'cache' as it was before a later kiln.cache_write
func.func @stale_write(%p: tensor<1xi64>, %r: tensor<1x4xf32>) -> tensor<8x4xf32> {
  %s = kiln.state "cache" : tensor<8x4xf32>
  %w1 = kiln.cache_write %s[%p], %r dim 0 : (tensor<8x4xf32>, tensor<1xi64>, tensor<1x4xf32>) -> tensor<8x4xf32>
  %w2 = kiln.cache_write %w1[%p], %r dim 0 : (tensor<8x4xf32>, tensor<1xi64>, tensor<1x4xf32>) -> tensor<8x4xf32>
  %b = kiln.unary "neg" %w1 : (tensor<8x4xf32>) -> tensor<8x4xf32>
  return %b : tensor<8x4xf32>
}
