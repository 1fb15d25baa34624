// The runtime holds one buffer per state: reading the value from before a
// cache_write after that write would see the new contents, so it is an error.
// RUN: not kiln-portable-translate %s -o %t.kiln 2>&1 | FileCheck %s
// RUN: not test -e %t.kiln

// CHECK: state-order.mlir:11:8: error: cannot lower 'kiln.unary': it reads state 'cache' as it was before a later kiln.cache_write (the runtime updates a state in place; use the write's result)
func.func @stale(%p: tensor<1xi64>, %r: tensor<1x4xf32>) -> (tensor<8x4xf32>, tensor<8x4xf32>) {
  %s = kiln.state "cache" : tensor<8x4xf32>
  %w = kiln.cache_write %s[%p], %r dim 0 : (tensor<8x4xf32>, tensor<1xi64>, tensor<1x4xf32>) -> tensor<8x4xf32>
  %a = kiln.unary "neg" %w : (tensor<8x4xf32>) -> tensor<8x4xf32>
  %b = kiln.unary "neg" %s : (tensor<8x4xf32>) -> tensor<8x4xf32>
  return %a, %b : tensor<8x4xf32>, tensor<8x4xf32>
}
