// The fused ops (targets of kiln-fuse) print and parse back unchanged.
// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// CHECK-LABEL: func.func @swiglu(
// CHECK: kiln.swiglu %{{.+}}, %{{.+}} : (tensor<2x64xf32>, tensor<2x64xf32>) -> tensor<2x64xf32>
// Broadcasting like binary mul; unranked operands are accepted.
// CHECK: kiln.swiglu %{{.+}}, %{{.+}} : (tensor<*xf32>, tensor<64xf32>) -> tensor<*xf32>
func.func @swiglu(%g: tensor<2x64xf32>, %u: tensor<2x64xf32>, %x: tensor<*xf32>, %b: tensor<64xf32>) -> (tensor<2x64xf32>, tensor<*xf32>) {
  %0 = kiln.swiglu %g, %u : (tensor<2x64xf32>, tensor<2x64xf32>) -> tensor<2x64xf32>
  %1 = kiln.swiglu %x, %b : (tensor<*xf32>, tensor<64xf32>) -> tensor<*xf32>
  return %0, %1 : tensor<2x64xf32>, tensor<*xf32>
}

// CHECK-LABEL: func.func @rope(
// CHECK: kiln.rope %{{.+}}, %{{.+}}, %{{.+}} style "rotate_half" : (tensor<1x4x6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<1x4x6x8xf32>
// CHECK: kiln.rope %{{.+}}, %{{.+}}, %{{.+}} style "interleaved" : (tensor<*xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<*xf32>
func.func @rope(%x: tensor<1x4x6x8xf32>, %cos: tensor<6x8xf32>, %sin: tensor<6x8xf32>, %u: tensor<*xf32>) -> (tensor<1x4x6x8xf32>, tensor<*xf32>) {
  %0 = kiln.rope %x, %cos, %sin style "rotate_half" : (tensor<1x4x6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<1x4x6x8xf32>
  %1 = kiln.rope %u, %cos, %sin style "interleaved" : (tensor<*xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<*xf32>
  return %0, %1 : tensor<1x4x6x8xf32>, tensor<*xf32>
}

// CHECK-LABEL: func.func @attention(
// CHECK: kiln.attention %{{.+}}, %{{.+}}, %{{.+}} scale 0.35355339059327379 causal true : (tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) -> tensor<1x4x6x8xf32>
// CHECK: kiln.attention %{{.+}}, %{{.+}}, %{{.+}} mask %{{.+}} scale 1.250000e-01 causal false : (tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>, tensor<6x6xi1>) -> tensor<1x4x6x8xf32>
// Decode: one query against 9 keys; unknown shapes are left to the kernel.
// CHECK: kiln.attention %{{.+}}, %{{.+}}, %{{.+}} scale 1.000000e+00 causal true : (tensor<2x4x1x8xf32>, tensor<1x4x9x8xf32>, tensor<*xf32>) -> tensor<*xf32>
func.func @attention(%q: tensor<1x4x6x8xf32>, %k: tensor<1x2x6x8xf32>, %v: tensor<1x2x6x8xf32>, %m: tensor<6x6xi1>,
                     %q1: tensor<2x4x1x8xf32>, %k9: tensor<1x4x9x8xf32>, %vu: tensor<*xf32>) -> (tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>, tensor<*xf32>) {
  %0 = kiln.attention %q, %k, %v scale 0.35355339059327379 causal true : (tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) -> tensor<1x4x6x8xf32>
  %1 = kiln.attention %q, %k, %v mask %m scale 0.125 causal false : (tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>, tensor<6x6xi1>) -> tensor<1x4x6x8xf32>
  %2 = kiln.attention %q1, %k9, %vu scale 1.0 causal true : (tensor<2x4x1x8xf32>, tensor<1x4x9x8xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %0, %1, %2 : tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>, tensor<*xf32>
}

// transpose_b is printed only when true.
// CHECK-LABEL: func.func @matmul_transpose_b(
// CHECK: kiln.matmul %{{.+}}, %{{.+}} {transpose_b = true} : (tensor<2x3x4xf32>, tensor<5x4xf32>) -> tensor<2x3x5xf32>
// CHECK: kiln.matmul %{{.+}}, %{{.+}} : (tensor<2x3x4xf32>, tensor<4x5xf32>) -> tensor<2x3x5xf32>
func.func @matmul_transpose_b(%a: tensor<2x3x4xf32>, %b: tensor<5x4xf32>, %c: tensor<4x5xf32>) -> (tensor<2x3x5xf32>, tensor<2x3x5xf32>) {
  %0 = kiln.matmul %a, %b {transpose_b = true} : (tensor<2x3x4xf32>, tensor<5x4xf32>) -> tensor<2x3x5xf32>
  %1 = kiln.matmul %a, %c {transpose_b = false} : (tensor<2x3x4xf32>, tensor<4x5xf32>) -> tensor<2x3x5xf32>
  return %0, %1 : tensor<2x3x5xf32>, tensor<2x3x5xf32>
}
