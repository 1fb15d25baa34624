// !kiln.qweight and kiln.qconstant round-trip; linear and embedding take a
// quantized weight and still produce f32.
// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// CHECK-LABEL: func.func @int8(
// CHECK:         %[[W:.+]] = kiln.qconstant dense<{{\[}}[1, -2, 3], [4, 5, -127]]> : tensor<2x3xi8> scales dense<{{\[}}[5.000000e-01], [2.500000e-01]]> : tensor<2x1xf16> : !kiln.qweight<i8, [2, 3]>
// CHECK:         kiln.linear %{{.+}}, %[[W]] : (tensor<4x3xf32>, !kiln.qweight<i8, [2, 3]>) -> tensor<4x2xf32>
// CHECK:         kiln.embedding %[[W]], %{{.+}} : (!kiln.qweight<i8, [2, 3]>, tensor<5xi64>) -> tensor<5x3xf32>
func.func @int8(%x: tensor<4x3xf32>, %ids: tensor<5xi64>) -> (tensor<4x2xf32>, tensor<5x3xf32>) {
  %w = kiln.qconstant dense<[[1, -2, 3], [4, 5, -127]]> : tensor<2x3xi8>
      scales dense<[[0.5], [0.25]]> : tensor<2x1xf16> : !kiln.qweight<i8, [2, 3]>
  %y = kiln.linear %x, %w : (tensor<4x3xf32>, !kiln.qweight<i8, [2, 3]>) -> tensor<4x2xf32>
  %e = kiln.embedding %w, %ids : (!kiln.qweight<i8, [2, 3]>, tensor<5xi64>) -> tensor<5x3xf32>
  return %y, %e : tensor<4x2xf32>, tensor<5x3xf32>
}

// CHECK-LABEL: func.func @int4(
// CHECK:         kiln.qconstant dense<17> : tensor<3x32xi8> scales dense<1.000000e+00> : tensor<3x1xf16> : !kiln.qweight<i4, [3, 64], group = 64>
// CHECK:         kiln.linear %{{.+}}, %{{.+}}, %{{.+}} : (tensor<?x64xf32>, !kiln.qweight<i4, [3, 64], group = 64>, tensor<3xf32>) -> tensor<?x3xf32>
func.func @int4(%x: tensor<?x64xf32>, %b: tensor<3xf32>) -> tensor<?x3xf32> {
  %w = kiln.qconstant dense<17> : tensor<3x32xi8> scales dense<1.0> : tensor<3x1xf16>
      : !kiln.qweight<i4, [3, 64], group = 64>
  %y = kiln.linear %x, %w, %b : (tensor<?x64xf32>, !kiln.qweight<i4, [3, 64], group = 64>, tensor<3xf32>) -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

// The group of an i8 weight is its in-features: it may be written, and is
// printed only for i4.
// CHECK-LABEL: func.func @explicit_group(
// CHECK-SAME:    %{{.+}}: !kiln.qweight<i8, [2, 3]>, %{{.+}}: !kiln.qweight<i4, [2, 128], group = 128>)
func.func @explicit_group(%a: !kiln.qweight<i8, [2, 3], group = 3>, %b: !kiln.qweight<i4, [2, 128], group = 128>) {
  return
}
