// RUN: not kiln-portable-translate %s -o %t.kiln 2>&1 | FileCheck %s
// RUN: not test -e %t.kiln

// A non-kiln op cannot be lowered: the error points at the op and no file is written.
func.func @forward(%x: tensor<2xf32>) -> tensor<2xf32> {
  // CHECK: errors.mlir:[[@LINE+1]]:8: error: cannot lower 'func.call' to the portable program: only kiln ops and func.return are supported
  %y = func.call @helper(%x) : (tensor<2xf32>) -> tensor<2xf32>
  return %y : tensor<2xf32>
}

func.func private @helper(%x: tensor<2xf32>) -> tensor<2xf32> {
  return %x : tensor<2xf32>
}
