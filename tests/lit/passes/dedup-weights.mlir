// kiln-dedup-weights: constants with the same type and bytes become one.
// RUN: kiln-opt %s --split-input-file --kiln-dedup-weights | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-dedup-weights=report 2>&1 >/dev/null | FileCheck %s --check-prefix=STATS

// A tied embedding: the table and the output head are two resource blobs with
// the same bytes (tracing copies both); after the pass one constant feeds both.
// CHECK-LABEL: func.func @tied(
// CHECK:         %[[W:.+]] = kiln.constant dense_resource<embed> : tensor<2x4xf32>
// CHECK-NOT:     kiln.constant
// CHECK:         kiln.embedding %[[W]]
// CHECK:         kiln.linear %{{.+}}, %[[W]]
func.func @tied(%ids: tensor<3xi64>) -> tensor<3x2xf32> {
  %embed = kiln.constant dense_resource<embed> : tensor<2x4xf32>
  %h = kiln.embedding %embed, %ids : (tensor<2x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %head = kiln.constant dense_resource<head> : tensor<2x4xf32>
  %logits = kiln.linear %h, %head : (tensor<3x4xf32>, tensor<2x4xf32>) -> tensor<3x2xf32>
  return %logits : tensor<3x2xf32>
}

{-#
  dialect_resources: {
    builtin: {
      embed: "0x04000000000000000000803F0000004000004040000080400000A0400000C0400000E040",
      head: "0x04000000000000000000803F0000004000004040000080400000A0400000C0400000E040"
    }
  }
#-}

// -----

// Equal bytes but different shapes (2x4 vs 4x2) or element types (f32 vs i32)
// must not merge: they are different values.
// CHECK-LABEL: func.func @different_types(
// CHECK-DAG:     kiln.constant dense_resource<a> : tensor<2x4xf32>
// CHECK-DAG:     kiln.constant dense_resource<b> : tensor<4x2xf32>
// CHECK-DAG:     kiln.constant dense_resource<c> : tensor<2x4xi32>
func.func @different_types() -> (tensor<2x4xf32>, tensor<4x2xf32>, tensor<2x4xi32>) {
  %a = kiln.constant dense_resource<a> : tensor<2x4xf32>
  %b = kiln.constant dense_resource<b> : tensor<4x2xf32>
  %c = kiln.constant dense_resource<c> : tensor<2x4xi32>
  return %a, %b, %c : tensor<2x4xf32>, tensor<4x2xf32>, tensor<2x4xi32>
}

{-#
  dialect_resources: {
    builtin: {
      a: "0x040000000100000002000000030000000400000005000000060000000700000008000000",
      b: "0x040000000100000002000000030000000400000005000000060000000700000008000000",
      c: "0x040000000100000002000000030000000400000005000000060000000700000008000000"
    }
  }
#-}

// -----

// Same shape and type, one byte different: both stay.
// CHECK-LABEL: func.func @one_byte_apart(
// CHECK-DAG:     kiln.constant dense_resource<p> : tensor<4xf32>
// CHECK-DAG:     kiln.constant dense_resource<q> : tensor<4xf32>
func.func @one_byte_apart() -> (tensor<4xf32>, tensor<4xf32>) {
  %p = kiln.constant dense_resource<p> : tensor<4xf32>
  %q = kiln.constant dense_resource<q> : tensor<4xf32>
  return %p, %q : tensor<4xf32>, tensor<4xf32>
}

{-#
  dialect_resources: {
    builtin: {
      p: "0x040000000000803F000000400000404000008040",
      q: "0x040000000000803F000000400000404000008041"
    }
  }
#-}

// -----

// Weight sharing across methods (prefill and decode trace the same weights as
// separate blobs): decode's copy is rewritten to refer to prefill's blob, so
// the program stores it once. A block run twice with the same weights (LS)
// gets one constant.
// CHECK-LABEL: func.func @prefill(
// CHECK:         %[[W:.+]] = kiln.constant dense_resource<w_prefill> : tensor<4xf32>
// CHECK:         kiln.binary "mul" %{{.+}}, %[[W]]
// CHECK:         kiln.binary "mul" %{{.+}}, %[[W]]
// CHECK-LABEL: func.func @decode(
// CHECK:         %[[W2:.+]] = kiln.constant dense_resource<w_prefill> : tensor<4xf32>
// CHECK-NOT:     dense_resource<w_decode>
// CHECK:         kiln.binary "mul" %{{.+}}, %[[W2]]
func.func @prefill(%x: tensor<4xf32>) -> tensor<4xf32> {
  %w = kiln.constant dense_resource<w_prefill> : tensor<4xf32>
  %0 = kiln.binary "mul" %x, %w : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %w_again = kiln.constant dense_resource<w_prefill_again> : tensor<4xf32>
  %1 = kiln.binary "mul" %0, %w_again : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %1 : tensor<4xf32>
}
func.func @decode(%x: tensor<4xf32>) -> tensor<4xf32> {
  %w = kiln.constant dense_resource<w_decode> : tensor<4xf32>
  %0 = kiln.binary "mul" %x, %w : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

{-#
  dialect_resources: {
    builtin: {
      w_prefill: "0x040000000000803F000000400000404000008040",
      w_prefill_again: "0x040000000000803F000000400000404000008040",
      w_decode: "0x040000000000803F000000400000404000008040"
    }
  }
#-}

// The report of each split, in order: the tied table (32 bytes) merges; no
// merge across types or different bytes; 2 merges across prefill and decode.
// STATS: remark: kiln-dedup-weights: 1 of 2 constants merged, 32 bytes no longer stored twice
// STATS: remark: kiln-dedup-weights: 0 of 3 constants merged, 0 bytes
// STATS: remark: kiln-dedup-weights: 0 of 2 constants merged, 0 bytes
// STATS: remark: kiln-dedup-weights: 2 of 3 constants merged, 32 bytes
