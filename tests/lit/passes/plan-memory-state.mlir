// kiln-plan-memory leaves program state alone: kiln.state and kiln.cache_write
// results live in the runtime's state buffers, so they get no arena offset,
// count in no size, and are never overwritten by an in-place result (here
// `neg` of the written state would otherwise reuse its bytes: same shape, and
// the state value dies there).
// RUN: kiln-opt %s --kiln-plan-memory | FileCheck %s
// RUN: kiln-opt %s --kiln-plan-memory=report 2>&1 >/dev/null | FileCheck %s --check-prefix=STATS

// CHECK-LABEL: func.func @step(
// CHECK-SAME:    kiln.arena_bytes = 128 : i64, kiln.arena_lower_bound_bytes = 128 : i64, kiln.naive_bytes = 128 : i64
// CHECK:         %[[S:.+]] = kiln.state "cache" : tensor<4x8xf32>
// CHECK-NOT:     kiln.arena_offsets
// CHECK-NEXT:    %[[W:.+]] = kiln.cache_write %[[S]]
// CHECK-NOT:     kiln.arena_offsets
// CHECK-SAME:    -> tensor<4x8xf32>
// CHECK-NEXT:    kiln.unary "neg" %[[W]] {{.*}}{kiln.arena_offsets = array<i64: 0>}
// STATS: kiln-plan-memory: step: arena 128 bytes, lower bound 128, naive 128, 1 values planned, 0 left dynamic, 0 in place
func.func @step(%p: tensor<1xi64>, %row: tensor<1x8xf32>) -> tensor<4x8xf32> {
  %s = kiln.state "cache" : tensor<4x8xf32>
  %w = kiln.cache_write %s[%p], %row dim 0 : (tensor<4x8xf32>, tensor<1xi64>, tensor<1x8xf32>) -> tensor<4x8xf32>
  %n = kiln.unary "neg" %w : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %n : tensor<4x8xf32>
}
