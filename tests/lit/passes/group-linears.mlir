// kiln-group-linears: linears reading the same input become consecutive ops.
// RUN: kiln-opt %s --split-input-file --kiln-group-linears | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-group-linears=report 2>&1 >/dev/null | FileCheck %s --check-prefix=STATS

// An attention block's q / k / v projections, each followed by its reshape:
// k and v move up behind q (with k's weight, defined between them), the
// reshapes keep their order after the run.
// CHECK-LABEL: func.func @qkv(
// CHECK:         %[[Q:.+]] = kiln.linear %arg0, %{{.+}} : (tensor<1x32xf32>, tensor<8x32xf32>)
// CHECK-NEXT:    %[[K:.+]] = kiln.linear %arg0, %{{.+}} : (tensor<1x32xf32>, tensor<4x32xf32>)
// CHECK-NEXT:    %[[V:.+]] = kiln.linear %arg0, %{{.+}} : (tensor<1x32xf32>, !kiln.qweight<i4, [4, 32], group = 32>)
// CHECK-NEXT:    kiln.reshape %[[Q]]
// CHECK-NEXT:    kiln.reshape %[[K]]
// CHECK-NEXT:    kiln.reshape %[[V]]
// STATS: kiln-group-linears: 1 groups of linears sharing an input, 2 linears moved
func.func @qkv(%x: tensor<1x32xf32>) -> (tensor<2x4xf32>, tensor<2x2xf32>, tensor<2x2xf32>) {
  %wq = kiln.constant dense<1.0> : tensor<8x32xf32>
  %s4 = kiln.constant dense<[2, 4]> : tensor<2xi64>
  %s2 = kiln.constant dense<[2, 2]> : tensor<2xi64>
  %q = kiln.linear %x, %wq : (tensor<1x32xf32>, tensor<8x32xf32>) -> tensor<1x8xf32>
  %q2 = kiln.reshape %q, %s4 : (tensor<1x8xf32>, tensor<2xi64>) -> tensor<2x4xf32>
  %wk = kiln.constant dense<2.0> : tensor<4x32xf32>
  %k = kiln.linear %x, %wk : (tensor<1x32xf32>, tensor<4x32xf32>) -> tensor<1x4xf32>
  %k2 = kiln.reshape %k, %s2 : (tensor<1x4xf32>, tensor<2xi64>) -> tensor<2x2xf32>
  %wv = kiln.qconstant dense<0> : tensor<4x16xi8> scales dense<1.0> : tensor<4x1xf16> : !kiln.qweight<i4, [4, 32], group = 32>
  %v = kiln.linear %x, %wv : (tensor<1x32xf32>, !kiln.qweight<i4, [4, 32], group = 32>) -> tensor<1x4xf32>
  %v2 = kiln.reshape %v, %s2 : (tensor<1x4xf32>, tensor<2xi64>) -> tensor<2x2xf32>
  return %q2, %k2, %v2 : tensor<2x4xf32>, tensor<2x2xf32>, tensor<2x2xf32>
}

// -----

// A linear whose bias is computed after the first linear of its input cannot
// move above it: it stays where it is (no group). Linears of different inputs
// are left alone.
// STATS: kiln-group-linears: 0 groups of linears sharing an input, 0 linears moved
// CHECK-LABEL: func.func @late_bias(
// CHECK:         kiln.linear %arg0, %{{[^,]+}} :
// CHECK-NEXT:    kiln.unary
// CHECK-NEXT:    kiln.linear %arg1
// CHECK-NEXT:    kiln.linear %arg0, %{{.+}}, %{{.+}} :
func.func @late_bias(%x: tensor<1x8xf32>, %y: tensor<1x8xf32>, %b0: tensor<4xf32>)
    -> (tensor<1x4xf32>, tensor<1x4xf32>, tensor<1x4xf32>) {
  %w = kiln.constant dense<1.0> : tensor<4x8xf32>
  %a = kiln.linear %x, %w : (tensor<1x8xf32>, tensor<4x8xf32>) -> tensor<1x4xf32>
  %b = kiln.unary "neg" %b0 : (tensor<4xf32>) -> tensor<4xf32>
  %c = kiln.linear %y, %w : (tensor<1x8xf32>, tensor<4x8xf32>) -> tensor<1x4xf32>
  %d = kiln.linear %x, %w, %b : (tensor<1x8xf32>, tensor<4x8xf32>, tensor<4xf32>) -> tensor<1x4xf32>
  return %a, %c, %d : tensor<1x4xf32>, tensor<1x4xf32>, tensor<1x4xf32>
}
