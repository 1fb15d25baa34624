// kiln-fuse: RoPE written as `x * cos + x.index_select(-1, perm) * sin` with a
// constant lane permutation and the signs in the sin table (MobileLLM's export,
// python/kiln/models/mobilellm.py) becomes `kiln.rope_perm`; near misses (not a
// permutation, a perm of another length than x's last dim, another dim, cos on
// another value, an intermediate with a second use) are left alone.
// RUN: kiln-opt %s --split-input-file --kiln-fuse | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-fuse=report 2>&1 >/dev/null | FileCheck %s --check-prefix=REPORT
// RUN: kiln-opt %s --split-input-file --kiln-fuse | kiln-opt --split-input-file | FileCheck %s --check-prefix=ROUNDTRIP

// The MobileLLM decode/prefill form: q/k [1, H, T, 8] after the head
// transpose, cos/sin rows picked from [S, 8] tables at the positions;
// rotate-half perm (halves swapped) for q, and the same for k with every
// operand order swapped. The perm constant and the index_selects go away.
// CHECK-LABEL: func.func @rope_rotate_half(
// CHECK-SAME:    %[[Q:[^:]+]]: tensor<1x4x3x8xf32>, %[[K:[^:]+]]: tensor<1x2x3x8xf32>
// CHECK:         %[[COS:.+]] = kiln.index_select %{{.+}}, %{{.+}} dim 0 : (tensor<16x8xf32>, tensor<3xi64>) -> tensor<3x8xf32>
// CHECK:         %[[SIN:.+]] = kiln.index_select %{{.+}}, %{{.+}} dim 0 : (tensor<16x8xf32>, tensor<3xi64>) -> tensor<3x8xf32>
// CHECK-NEXT:    %[[A:.+]] = kiln.rope_perm %[[Q]], %[[COS]], %[[SIN]] perm [4, 5, 6, 7, 0, 1, 2, 3] : (tensor<1x4x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<1x4x3x8xf32>
// CHECK-NEXT:    %[[B:.+]] = kiln.rope_perm %[[K]], %[[COS]], %[[SIN]] perm [4, 5, 6, 7, 0, 1, 2, 3] : (tensor<1x2x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<1x2x3x8xf32>
// CHECK-NEXT:    return %[[A]], %[[B]]
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 2, attention 0
// ROUNDTRIP-LABEL: func.func @rope_rotate_half(
// ROUNDTRIP-COUNT-2: kiln.rope_perm
func.func @rope_rotate_half(%q: tensor<1x4x3x8xf32>, %k: tensor<1x2x3x8xf32>, %pos: tensor<3xi64>) -> (tensor<1x4x3x8xf32>, tensor<1x2x3x8xf32>) {
  %cos_t = kiln.constant dense<0.5> : tensor<16x8xf32>
  %sin_t = kiln.constant dense<0.25> : tensor<16x8xf32>
  %perm = kiln.constant dense<[4, 5, 6, 7, 0, 1, 2, 3]> : tensor<8xi64>
  %cos = kiln.index_select %cos_t, %pos dim 0 : (tensor<16x8xf32>, tensor<3xi64>) -> tensor<3x8xf32>
  %sin = kiln.index_select %sin_t, %pos dim 0 : (tensor<16x8xf32>, tensor<3xi64>) -> tensor<3x8xf32>
  %qc = kiln.binary "mul" %q, %cos : (tensor<1x4x3x8xf32>, tensor<3x8xf32>) -> tensor<1x4x3x8xf32>
  %qp = kiln.index_select %q, %perm dim -1 : (tensor<1x4x3x8xf32>, tensor<8xi64>) -> tensor<1x4x3x8xf32>
  %qs = kiln.binary "mul" %qp, %sin : (tensor<1x4x3x8xf32>, tensor<3x8xf32>) -> tensor<1x4x3x8xf32>
  %a = kiln.binary "add" %qc, %qs : (tensor<1x4x3x8xf32>, tensor<1x4x3x8xf32>) -> tensor<1x4x3x8xf32>

  %kc = kiln.binary "mul" %cos, %k : (tensor<3x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %kp = kiln.index_select %k, %perm dim 3 : (tensor<1x2x3x8xf32>, tensor<8xi64>) -> tensor<1x2x3x8xf32>
  %ks = kiln.binary "mul" %sin, %kp : (tensor<3x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %b = kiln.binary "add" %ks, %kc : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  return %a, %b : tensor<1x4x3x8xf32>, tensor<1x2x3x8xf32>
}

// -----

// MobileLLM-R1's interleaved pairs (perm swaps 2i and 2i+1), on an unranked x
// (a bare trace): an 8-entry permutation is enough there. An i32 index works too.
// CHECK-LABEL: func.func @rope_interleaved(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<*xf32>, %[[COS:[^:]+]]: tensor<3x8xf32>, %[[SIN:[^:]+]]: tensor<3x8xf32>
// CHECK-NEXT:    %[[A:.+]] = kiln.rope_perm %[[X]], %[[COS]], %[[SIN]] perm [1, 0, 3, 2, 5, 4, 7, 6] : (tensor<*xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<*xf32>
// CHECK-NEXT:    return %[[A]]
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 1, attention 0
func.func @rope_interleaved(%x: tensor<*xf32>, %cos: tensor<3x8xf32>, %sin: tensor<3x8xf32>) -> tensor<*xf32> {
  %perm = kiln.constant dense<[1, 0, 3, 2, 5, 4, 7, 6]> : tensor<8xi32>
  %xc = kiln.binary "mul" %x, %cos : (tensor<*xf32>, tensor<3x8xf32>) -> tensor<*xf32>
  %xp = kiln.index_select %x, %perm dim -1 : (tensor<*xf32>, tensor<8xi32>) -> tensor<*xf32>
  %xs = kiln.binary "mul" %sin, %xp : (tensor<3x8xf32>, tensor<*xf32>) -> tensor<*xf32>
  %a = kiln.binary "add" %xc, %xs : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %a : tensor<*xf32>
}

// -----

// Near misses, each left as it is:
// %a: the index repeats lane 0 (not a permutation);
// %b: a permutation of 2 lanes on a 1-lane x (the dims differ; broadcasting
//     makes the unfused ops verify, they fail at run time);
// %c: the index_select on dim 2, not the last dim;
// %d: cos multiplies another value than the permuted one;
// %e: the index is not a constant;
// %f: the permuted x has a second use (returned);
// %g: a 1-lane permutation (could broadcast against cos/sin) on an unranked x.
// CHECK-LABEL: func.func @rope_near_misses(
// CHECK-NOT:     kiln.rope_perm
// CHECK:         return
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 0
func.func @rope_near_misses(%x: tensor<2x3x8xf32>, %z: tensor<2x3x8xf32>, %cos: tensor<3x8xf32>, %sin: tensor<3x8xf32>,
                            %idx: tensor<8xi64>, %u: tensor<*xf32>,
                            %x1: tensor<2x3x1xf32>, %cos2: tensor<3x2xf32>, %sin2: tensor<3x2xf32>)
    -> (tensor<2x3x8xf32>, tensor<2x3x2xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<*xf32>) {
  %dup = kiln.constant dense<[0, 0, 2, 3, 4, 5, 6, 7]> : tensor<8xi64>
  %p2 = kiln.constant dense<[1, 0]> : tensor<2xi64>
  %p3 = kiln.constant dense<[1, 2, 0]> : tensor<3xi64>
  %perm = kiln.constant dense<[4, 5, 6, 7, 0, 1, 2, 3]> : tensor<8xi64>
  %p1 = kiln.constant dense<[0]> : tensor<1xi64>

  %ac = kiln.binary "mul" %x, %cos : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %ap = kiln.index_select %x, %dup dim -1 : (tensor<2x3x8xf32>, tensor<8xi64>) -> tensor<2x3x8xf32>
  %as = kiln.binary "mul" %ap, %sin : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %a = kiln.binary "add" %ac, %as : (tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>

  %bc = kiln.binary "mul" %x1, %cos2 : (tensor<2x3x1xf32>, tensor<3x2xf32>) -> tensor<2x3x2xf32>
  %bp = kiln.index_select %x1, %p2 dim -1 : (tensor<2x3x1xf32>, tensor<2xi64>) -> tensor<2x3x2xf32>
  %bs = kiln.binary "mul" %bp, %sin2 : (tensor<2x3x2xf32>, tensor<3x2xf32>) -> tensor<2x3x2xf32>
  %b = kiln.binary "add" %bc, %bs : (tensor<2x3x2xf32>, tensor<2x3x2xf32>) -> tensor<2x3x2xf32>

  %cc = kiln.binary "mul" %x, %cos : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %cp = kiln.index_select %x, %p3 dim 1 : (tensor<2x3x8xf32>, tensor<3xi64>) -> tensor<2x3x8xf32>
  %cs = kiln.binary "mul" %cp, %sin : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %c = kiln.binary "add" %cc, %cs : (tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>

  %dc = kiln.binary "mul" %z, %cos : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %dp = kiln.index_select %x, %perm dim -1 : (tensor<2x3x8xf32>, tensor<8xi64>) -> tensor<2x3x8xf32>
  %ds = kiln.binary "mul" %dp, %sin : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %d = kiln.binary "add" %dc, %ds : (tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>

  %ec = kiln.binary "mul" %x, %cos : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %ep = kiln.index_select %x, %idx dim -1 : (tensor<2x3x8xf32>, tensor<8xi64>) -> tensor<2x3x8xf32>
  %es = kiln.binary "mul" %ep, %sin : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %e = kiln.binary "add" %ec, %es : (tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>

  %fc = kiln.binary "mul" %x, %cos : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %fp = kiln.index_select %x, %perm dim -1 : (tensor<2x3x8xf32>, tensor<8xi64>) -> tensor<2x3x8xf32>
  %fs = kiln.binary "mul" %fp, %sin : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
  %f = kiln.binary "add" %fc, %fs : (tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>

  %gc = kiln.binary "mul" %u, %cos : (tensor<*xf32>, tensor<3x8xf32>) -> tensor<*xf32>
  %gp = kiln.index_select %u, %p1 dim -1 : (tensor<*xf32>, tensor<1xi64>) -> tensor<*xf32>
  %gs = kiln.binary "mul" %gp, %sin : (tensor<*xf32>, tensor<3x8xf32>) -> tensor<*xf32>
  %g = kiln.binary "add" %gc, %gs : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %a, %b, %c, %d, %e, %f, %fp, %g : tensor<2x3x8xf32>, tensor<2x3x2xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<*xf32>
}
