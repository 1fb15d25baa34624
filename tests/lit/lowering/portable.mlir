// RUN: kiln-portable-translate %s -o %t.kiln --metadata model=tiny --dump | FileCheck %s

// Two methods sharing one weight: the weight is stored once (segment 0) and
// both methods point at it. The splat bias is expanded to 2 x f32 = 8 bytes and
// lands at the next 64-byte boundary (offset 64), the 2 x i64 shape at 128.
// CHECK: program version 2
// CHECK-NEXT: metadata producer = "kiln
// CHECK-NEXT: metadata model = "tiny"
// CHECK-NEXT: segment 0 offset 0 size 24
// CHECK-NEXT: segment 1 offset 64 size 8
// CHECK-NEXT: segment 2 offset 128 size 16
// CHECK-NOT: segment 3

// CHECK-LABEL: method forward inputs (0, 1) outputs (5, 6, 7)
// CHECK-NEXT: value 0 "x" f32 [?, 3] input
// CHECK-NEXT: value 1 "pos" i64 [*] input
// CHECK-NEXT: value 2 "" f32 [2, 3] constant segment 0
// CHECK-NEXT: value 3 "" f32 [2] constant segment 1
// CHECK-NEXT: value 4 "" f32 [?, 2] intermediate
// CHECK-NEXT: value 5 "" f32 [?, 2] output
// The returned input and constant get copies of their own (values 6 and 7).
// CHECK-NEXT: value 6 "pos" i64 [*] output
// CHECK-NEXT: value 7 "" f32 [2] output{{$}}
// No bias: linear still lists three operands, the absent one as -1.
// CHECK-NEXT: inst 0 linear (0, 2, -1) -> (4) {} @ model.py:12
// layer_norm without weight: operandSegmentSizes places the bias third.
// CHECK-NEXT: inst 1 layer_norm (4, -1, 3) -> (5) {eps = 1e-05, normalized_ndim = 1} @ model.py:13
// CHECK-NEXT: inst 2 copy (1) -> (6) {} @ {{.*}}portable.mlir:[[RET:[0-9]+]]
// CHECK-NEXT: inst 3 copy (3) -> (7) {} @ {{.*}}portable.mlir:[[RET]]
func.func @forward(%x: tensor<?x3xf32> {kiln.name = "x"}, %pos: tensor<*xi64> {kiln.name = "pos"})
    -> (tensor<?x2xf32>, tensor<*xi64>, tensor<2xf32>) {
  %w = kiln.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %b = kiln.constant dense<0.5> : tensor<2xf32>
  %l = kiln.linear %x, %w : (tensor<?x3xf32>, tensor<2x3xf32>) -> tensor<?x2xf32> loc("model.py":12:3)
  %n = kiln.layer_norm %l bias %b normalized_ndim 1 eps 1.000000e-05
      : (tensor<?x2xf32>, tensor<2xf32>) -> tensor<?x2xf32> loc("model.py":13:3)
  return %n, %pos, %b : tensor<?x2xf32>, tensor<*xi64>, tensor<2xf32>
}

// CHECK-LABEL: method decode inputs (0) outputs (4)
// CHECK-NEXT: value 0 "" f32 [1, 3] input
// CHECK-NEXT: value 1 "" f32 [2, 3] constant segment 0
// CHECK-NEXT: value 2 "" i64 [2] constant segment 2
// CHECK-NEXT: value 3 "" f32 [1, 2] intermediate
// CHECK-NEXT: value 4 "" f32 [1, 2] output
// Without an explicit loc, the op's position in this file is the location.
// CHECK-NEXT: inst 0 linear (0, 1, -1) -> (3) {} @ {{.*}}portable.mlir:{{[0-9]+}}
// CHECK-NEXT: inst 1 reshape (3, 2) -> (4) {}
func.func @decode(%x: tensor<1x3xf32>) -> tensor<1x2xf32> {
  %w = kiln.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %s = kiln.constant dense<[1, 2]> : tensor<2xi64>
  %l = kiln.linear %x, %w : (tensor<1x3xf32>, tensor<2x3xf32>) -> tensor<1x2xf32>
  %r = kiln.reshape %l, %s : (tensor<1x2xf32>, tensor<2xi64>) -> tensor<1x2xf32>
  return %r : tensor<1x2xf32>
}
