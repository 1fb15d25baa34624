// RUN: not kiln-portable-translate %s -o %t.kiln 2>&1 | FileCheck %s
// RUN: not test -e %t.kiln

// f64 has no program dtype: the argument is reported with its location.
// CHECK: errors-dtype.mlir:[[@LINE+1]]:20: error: cannot lower argument #0 of 'forward' of type 'tensor<2xf64>' to the portable program: element type 'f64' has no program dtype
func.func @forward(%x: tensor<2xf64>) -> tensor<2xf64> {
  return %x : tensor<2xf64>
}
