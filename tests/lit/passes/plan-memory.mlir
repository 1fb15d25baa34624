// kiln-plan-memory: one arena per function, best-fit offsets, in-place reuse.
// RUN: kiln-opt %s --split-input-file --kiln-plan-memory | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-plan-memory=report 2>&1 >/dev/null | FileCheck %s --check-prefix=STATS
//
// Steps are op positions in the block (func.return is the last step). A value
// lives from its defining op to its last use; results live to the return.
// Every size is rounded up to 64 bytes; 4x8xf32 is 128 bytes.

// A chain of ops that are not in-place candidates (softmax): %a [0,1],
// %b [1,2], %c [2,3]. %a and %b are live together at step 1, so %b goes on top
// of %a (128); %c only meets %b, so it takes the gap [0,128) %a left.
// Lower bound: two 128-byte values at any step = 256; naive 3 x 128 = 384.
// CHECK-LABEL: func.func @chain(
// CHECK-SAME:    kiln.arena_bytes = 256 : i64, kiln.arena_lower_bound_bytes = 256 : i64, kiln.naive_bytes = 384 : i64
// CHECK:         %[[A:.+]] = kiln.softmax %arg0 {{.*}}{kiln.arena_offsets = array<i64: 0>}
// CHECK:         %[[B:.+]] = kiln.softmax %[[A]] {{.*}}{kiln.arena_offsets = array<i64: 128>}
// CHECK:         kiln.softmax %[[B]] {{.*}}{kiln.arena_offsets = array<i64: 0>}
// STATS: kiln-plan-memory: chain: arena 256 bytes, lower bound 256, naive 384, 3 values planned, 0 left dynamic, 0 in place
func.func @chain(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %a = kiln.softmax %x dim -1 log false : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %b = kiln.softmax %a dim -1 log false : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %c = kiln.softmax %b dim -1 log false : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %c : tensor<4x8xf32>
}

// -----

// A diamond: %a (4x16xf32, 256 bytes) [0,2] feeds %b [1,3] and %c [2,3], which
// meet in %d (8x16xf32, 512 bytes) [3,4]. Largest first: %d at 0. %a does not
// meet %d: 0. %b meets %a [0,256) and %d [0,512): on top, 512. %c meets all
// three, with no gap between them: 768. Step 3 holds %b, %c and %d:
// 256 + 256 + 512 = 1024 = the lower bound, which the plan reaches.
// CHECK-LABEL: func.func @diamond(
// CHECK-SAME:    kiln.arena_bytes = 1024 : i64, kiln.arena_lower_bound_bytes = 1024 : i64, kiln.naive_bytes = 1280 : i64
// CHECK:         %[[A:.+]] = kiln.linear {{.*}}{kiln.arena_offsets = array<i64: 0>}
// CHECK:         %[[B:.+]] = kiln.softmax %[[A]] {{.*}}{kiln.arena_offsets = array<i64: 512>}
// CHECK:         %[[C:.+]] = kiln.softmax %[[A]] {{.*}}{kiln.arena_offsets = array<i64: 768>}
// CHECK:         kiln.concat %[[B]], %[[C]] {{.*}}{kiln.arena_offsets = array<i64: 0>}
func.func @diamond(%x: tensor<4x8xf32>, %w: tensor<16x8xf32>) -> tensor<8x16xf32> {
  %a = kiln.linear %x, %w : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  %b = kiln.softmax %a dim -1 log false : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %c = kiln.softmax %a dim 0 log false : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %d = kiln.concat %b, %c dim 0 : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  return %d : tensor<8x16xf32>
}

// -----

// In place: %a dies at the exp, which has its shape, so %b takes %a's offset;
// %b dies at the reshape (a view, run as a byte copy), so %c takes it too.
// One 128-byte buffer for three values (the constant shape is not planned).
// CHECK-LABEL: func.func @in_place(
// CHECK-SAME:    kiln.arena_bytes = 128 : i64, kiln.arena_lower_bound_bytes = 128 : i64, kiln.naive_bytes = 384 : i64
// CHECK:         %[[A:.+]] = kiln.softmax {{.*}}{kiln.arena_offsets = array<i64: 0>}
// CHECK:         %[[B:.+]] = kiln.unary "exp" %[[A]] {kiln.arena_offsets = array<i64: 0>}
// CHECK:         %[[S:.+]] = kiln.constant
// CHECK-NOT:     kiln.arena_offsets
// CHECK:         kiln.reshape %[[B]], %[[S]] {kiln.arena_offsets = array<i64: 0>}
// STATS: kiln-plan-memory: in_place: arena 128 bytes, lower bound 128, naive 384, 3 values planned, 0 left dynamic, 2 in place
func.func @in_place(%x: tensor<4x8xf32>) -> tensor<32xf32> {
  %a = kiln.softmax %x dim -1 log false : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %b = kiln.unary "exp" %a : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %s = kiln.constant dense<[32]> : tensor<1xi64>
  %c = kiln.reshape %b, %s : (tensor<4x8xf32>, tensor<1xi64>) -> tensor<32xf32>
  return %c : tensor<32xf32>
}

// -----

// A decode step's transpose [1, 1, 3, 4] -> [1, 3, 1, 4] only moves a size-1
// dim (same bytes): it takes its dying operand's offset like a reshape. The
// transpose of [1, 2, 3, 4] -> [1, 3, 2, 4] reorders data: its own buffer, and
// so does the permute that swaps the two dims of size > 1.
// CHECK-LABEL: func.func @transpose_views(
// CHECK:         %[[A:.+]] = kiln.unary "exp" %arg0 {kiln.arena_offsets = array<i64: [[OA:[0-9]+]]>}
// CHECK:         kiln.transpose %[[A]] dim0 1 dim1 2 {kiln.arena_offsets = array<i64: [[OA]]>}
// CHECK:         %[[B:.+]] = kiln.unary "exp" %arg1
// CHECK:         kiln.transpose %[[B]] dim0 1 dim1 2
// CHECK:         %[[C:.+]] = kiln.unary "exp" %arg2
// CHECK:         kiln.permute %[[C]] perm [1, 0]
// STATS: kiln-plan-memory: transpose_views: {{.*}} 6 values planned, 0 left dynamic, 1 in place
func.func @transpose_views(%x: tensor<1x1x3x4xf32>, %y: tensor<1x2x3x4xf32>, %z: tensor<2x3xf32>)
    -> (tensor<1x3x1x4xf32>, tensor<1x3x2x4xf32>, tensor<3x2xf32>) {
  %a = kiln.unary "exp" %x : (tensor<1x1x3x4xf32>) -> tensor<1x1x3x4xf32>
  %t = kiln.transpose %a dim0 1 dim1 2 : (tensor<1x1x3x4xf32>) -> tensor<1x3x1x4xf32>
  %b = kiln.unary "exp" %y : (tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  %u = kiln.transpose %b dim0 1 dim1 2 : (tensor<1x2x3x4xf32>) -> tensor<1x3x2x4xf32>
  %c = kiln.unary "exp" %z : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %p = kiln.permute %c perm [1, 0] : (tensor<2x3xf32>) -> tensor<3x2xf32>
  return %t, %u, %p : tensor<1x3x1x4xf32>, tensor<1x3x2x4xf32>, tensor<3x2xf32>
}

// -----

// %a is read again by the add after the exp: the exp must not overwrite it, so
// %b gets its own 128 bytes. At the add both %b and %a die; the add takes the
// first one's offset (%b, 128).
// CHECK-LABEL: func.func @used_after(
// CHECK-SAME:    kiln.arena_bytes = 256 : i64
// CHECK:         %[[A:.+]] = kiln.softmax {{.*}}{kiln.arena_offsets = array<i64: 0>}
// CHECK:         %[[B:.+]] = kiln.unary "exp" %[[A]] {kiln.arena_offsets = array<i64: 128>}
// CHECK:         kiln.binary "add" %[[B]], %[[A]] {kiln.arena_offsets = array<i64: 128>}
// STATS: kiln-plan-memory: used_after: arena 256 bytes, lower bound 256, naive 384, 3 values planned, 0 left dynamic, 1 in place
func.func @used_after(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %a = kiln.softmax %x dim -1 log false : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %b = kiln.unary "exp" %a : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %c = kiln.binary "add" %b, %a : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %c : tensor<4x8xf32>
}

// -----

// %a (4xf32, 16 bytes) dies at the compare whose result (4x4xi1) is also 16
// bytes, but %a is broadcast: the kernel reads %a[j] for every row, after
// row 0 has overwritten it. No in place: the result gets its own slot (64).
// CHECK-LABEL: func.func @broadcast(
// CHECK-SAME:    kiln.arena_bytes = 128 : i64
// CHECK:         %[[A:.+]] = kiln.unary "exp" %arg0 {kiln.arena_offsets = array<i64: 0>}
// CHECK:         kiln.compare "lt" %[[A]], %arg1 {kiln.arena_offsets = array<i64: 64>}
// STATS: kiln-plan-memory: broadcast: arena 128 bytes, lower bound 128, naive 128, 2 values planned, 0 left dynamic, 0 in place
func.func @broadcast(%x: tensor<4xf32>, %y: tensor<4x4xf32>) -> tensor<4x4xi1> {
  %a = kiln.unary "exp" %x : (tensor<4xf32>) -> tensor<4xf32>
  %c = kiln.compare "lt" %a, %y : (tensor<4xf32>, tensor<4x4xf32>) -> tensor<4x4xi1>
  return %c : tensor<4x4xi1>
}

// -----

// A dynamic dim (%a) and a dtype derived from a guessed argument dtype (%b:
// the runtime decides it) leave those values to the runtime allocator (-1).
// The compare's i1 result has a fixed dtype and a static shape: planned
// (32 bytes -> 64).
// CHECK-LABEL: func.func @dynamic(
// CHECK-SAME:    kiln.arena_bytes = 64 : i64
// CHECK:         kiln.unary "exp" %arg0 {kiln.arena_offsets = array<i64: -1>}
// CHECK:         kiln.unary "exp" %arg1 {kiln.arena_offsets = array<i64: -1>}
// CHECK:         kiln.compare "gt" {{.*}}{kiln.arena_offsets = array<i64: 0>}
// STATS: kiln-plan-memory: dynamic: arena 64 bytes, lower bound 64, naive 64, 1 values planned, 2 left dynamic, 0 in place
func.func @dynamic(%x: tensor<?x8xf32>, %y: tensor<4x8xf32> {kiln.dtype_guessed})
    -> (tensor<?x8xf32>, tensor<4x8xf32>, tensor<4x8xi1>) {
  %a = kiln.unary "exp" %x : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %b = kiln.unary "exp" %y : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %c = kiln.compare "gt" %b, %b : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xi1>
  return %a, %b, %c : tensor<?x8xf32>, tensor<4x8xf32>, tensor<4x8xi1>
}

// -----

// Alignment: 3xf32 (12 bytes) takes 64, 100xi1 (100 bytes) takes 128,
// 3xi64 (24 bytes) takes 64; all live to the return. Largest first: %b at 0,
// %a on top of it at 128, %c on top of both at 192. Every offset is a
// multiple of 64. (The cast is not in place: 24 bytes != 12 bytes.)
// CHECK-LABEL: func.func @alignment(
// CHECK-SAME:    kiln.arena_bytes = 256 : i64
// CHECK:         kiln.unary "exp" %arg0 {kiln.arena_offsets = array<i64: 128>}
// CHECK:         kiln.unary "logical_not" %arg1 {kiln.arena_offsets = array<i64: 0>}
// CHECK:         kiln.cast {{.*}}{kiln.arena_offsets = array<i64: 192>}
func.func @alignment(%x: tensor<3xf32>, %m: tensor<100xi1>)
    -> (tensor<3xf32>, tensor<100xi1>, tensor<3xi64>) {
  %a = kiln.unary "exp" %x : (tensor<3xf32>) -> tensor<3xf32>
  %b = kiln.unary "logical_not" %m : (tensor<100xi1>) -> tensor<100xi1>
  %c = kiln.cast %a dtype "i64" : (tensor<3xf32>) -> tensor<3xi64>
  return %a, %b, %c : tensor<3xf32>, tensor<100xi1>, tensor<3xi64>
}

// -----

// Two results of one op are live together (one offset each); the mul then
// overwrites the first of them, which dies there.
// CHECK-LABEL: func.func @split(
// CHECK-SAME:    kiln.arena_bytes = 128 : i64
// CHECK:         %[[P:.+]]:2 = kiln.split {{.*}}{kiln.arena_offsets = array<i64: 0, 64>}
// CHECK:         kiln.binary "mul" %[[P]]#0, %[[P]]#1 {kiln.arena_offsets = array<i64: 0>}
func.func @split(%x: tensor<4x8xf32>) -> tensor<4x4xf32> {
  %p:2 = kiln.split %x dim 1 chunks 2 : (tensor<4x8xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>)
  %s = kiln.binary "mul" %p#0, %p#1 : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return %s : tensor<4x4xf32>
}
