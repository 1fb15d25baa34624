// One state name, one type across the module; no file is written on error.
// RUN: not kiln-portable-translate %s -o %t.kiln 2>&1 | FileCheck %s
// RUN: not test -e %t.kiln

// CHECK: state-errors.mlir:13:8: error: state 'cache' has type 'tensor<4x4xf32>' here but 'tensor<8x4xf32>' elsewhere in the module (one state, one type)
func.func @a() -> tensor<8x4xf32> {
  %s = kiln.state "cache" : tensor<8x4xf32>
  %n = kiln.unary "neg" %s : (tensor<8x4xf32>) -> tensor<8x4xf32>
  return %n : tensor<8x4xf32>
}

func.func @b() -> tensor<4x4xf32> {
  %s = kiln.state "cache" : tensor<4x4xf32>
  %n = kiln.unary "neg" %s : (tensor<4x4xf32>) -> tensor<4x4xf32>
  return %n : tensor<4x4xf32>
}
