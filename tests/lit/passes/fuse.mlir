// kiln-fuse: RMSNorm, SwiGLU, RoPE and attention pieces become fused ops; near
// misses (another dim, a non-constant eps, a non-causal mask, an intermediate with
// another use, ...) are left alone.
// RUN: kiln-opt %s --split-input-file --kiln-fuse | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-fuse=report 2>&1 >/dev/null | FileCheck %s --check-prefix=REPORT

// The Llama form (x.pow(2).mean(-1, keepdim=True), rsqrt, then the weight), on
// an unranked input as a bare trace gives it.
// CHECK-LABEL: func.func @rms_norm_weight(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<*xf32>
// CHECK:         %[[W:.+]] = kiln.constant dense<{{.+}}> : tensor<4xf32>
// CHECK-NEXT:    %[[N:.+]] = kiln.rms_norm %[[X]] weight %[[W]] eps 9.99999974{{.+}}E-6 : (tensor<*xf32>, tensor<4xf32>) -> tensor<*xf32>
// CHECK-NEXT:    return %[[N]]
// REPORT: remark: kiln-fuse: rms_norm 1, swiglu 0, rope 0, attention 0
func.func @rms_norm_weight(%x: tensor<*xf32>) -> tensor<*xf32> {
  %w = kiln.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %two = kiln.constant dense<2.0> : tensor<f32>
  %eps = kiln.constant dense<9.99999974E-6> : tensor<f32>
  %sq = kiln.binary "pow" %x, %two : (tensor<*xf32>, tensor<f32>) -> tensor<*xf32>
  %mean = kiln.reduce "mean" %sq dims [-1] keepdim true : (tensor<*xf32>) -> tensor<*xf32>
  %add = kiln.binary "add" %mean, %eps : (tensor<*xf32>, tensor<f32>) -> tensor<*xf32>
  %r = kiln.unary "rsqrt" %add : (tensor<*xf32>) -> tensor<*xf32>
  %n = kiln.binary "mul" %x, %r : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %y = kiln.binary "mul" %w, %n : (tensor<4xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %y : tensor<*xf32>
}

// -----

// x * x, eps first in the add, rsqrt on the left, no weight; the static last
// dim (2 of rank 2) is the last dim too.
// CHECK-LABEL: func.func @rms_norm_square_no_weight(
// The f32 constant 1e-6 widened to f64 exactly.
// CHECK:         %[[N:.+]] = kiln.rms_norm %arg0 eps 9.9999999747524271E-7 : (tensor<3x8xf32>) -> tensor<3x8xf32>
// CHECK-NEXT:    return %[[N]]
// REPORT: remark: kiln-fuse: rms_norm 1, swiglu 0, rope 0, attention 0
func.func @rms_norm_square_no_weight(%x: tensor<3x8xf32>) -> tensor<3x8xf32> {
  %eps = kiln.constant dense<1.0e-6> : tensor<f32>
  %sq = kiln.binary "mul" %x, %x : (tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
  %mean = kiln.reduce "mean" %sq dims [1] keepdim true : (tensor<3x8xf32>) -> tensor<3x1xf32>
  %add = kiln.binary "add" %eps, %mean : (tensor<f32>, tensor<3x1xf32>) -> tensor<3x1xf32>
  %r = kiln.unary "rsqrt" %add : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %n = kiln.binary "mul" %r, %x : (tensor<3x1xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
  return %n : tensor<3x8xf32>
}

// -----

// Near misses, none fused: the mean over dim 0 (not the last dim), an eps that
// is an argument, and an rsqrt that has another use.
// CHECK-LABEL: func.func @rms_norm_near_misses(
// CHECK-NOT:     kiln.rms_norm
// CHECK:         return
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 0
func.func @rms_norm_near_misses(%x: tensor<3x8xf32>, %eps_arg: tensor<f32>) -> (tensor<3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>, tensor<3x1xf32>) {
  %eps = kiln.constant dense<1.0e-6> : tensor<f32>
  %sq0 = kiln.binary "mul" %x, %x : (tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
  %mean0 = kiln.reduce "mean" %sq0 dims [0] keepdim true : (tensor<3x8xf32>) -> tensor<1x8xf32>
  %add0 = kiln.binary "add" %mean0, %eps : (tensor<1x8xf32>, tensor<f32>) -> tensor<1x8xf32>
  %r0 = kiln.unary "rsqrt" %add0 : (tensor<1x8xf32>) -> tensor<1x8xf32>
  %n0 = kiln.binary "mul" %x, %r0 : (tensor<3x8xf32>, tensor<1x8xf32>) -> tensor<3x8xf32>

  %sq1 = kiln.binary "mul" %x, %x : (tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
  %mean1 = kiln.reduce "mean" %sq1 dims [-1] keepdim true : (tensor<3x8xf32>) -> tensor<3x1xf32>
  %add1 = kiln.binary "add" %mean1, %eps_arg : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %r1 = kiln.unary "rsqrt" %add1 : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %n1 = kiln.binary "mul" %x, %r1 : (tensor<3x8xf32>, tensor<3x1xf32>) -> tensor<3x8xf32>

  %sq2 = kiln.binary "mul" %x, %x : (tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
  %mean2 = kiln.reduce "mean" %sq2 dims [-1] keepdim true : (tensor<3x8xf32>) -> tensor<3x1xf32>
  %add2 = kiln.binary "add" %mean2, %eps : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %r2 = kiln.unary "rsqrt" %add2 : (tensor<3x1xf32>) -> tensor<3x1xf32>
  %n2 = kiln.binary "mul" %x, %r2 : (tensor<3x8xf32>, tensor<3x1xf32>) -> tensor<3x8xf32>
  return %n0, %n1, %n2, %r2 : tensor<3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>, tensor<3x1xf32>
}

// -----

// CHECK-LABEL: func.func @swiglu(
// CHECK-SAME:    %[[G:[^:]+]]: tensor<*xf32>, %[[U:[^:]+]]: tensor<*xf32>
// CHECK:         %[[A:.+]] = kiln.swiglu %[[G]], %[[U]] : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
// up * silu(gate): the operands of the fused op stay gate, up.
// CHECK:         %[[B:.+]] = kiln.swiglu %[[G]], %[[U]]
// gate * sigmoid(gate) * up.
// CHECK:         %[[C:.+]] = kiln.swiglu %[[G]], %[[U]]
// CHECK:         return %[[A]], %[[B]], %[[C]]
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 3, rope 0, attention 0
func.func @swiglu(%g: tensor<*xf32>, %u: tensor<*xf32>) -> (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>) {
  %s0 = kiln.unary "silu" %g : (tensor<*xf32>) -> tensor<*xf32>
  %a = kiln.binary "mul" %s0, %u : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %s1 = kiln.unary "silu" %g : (tensor<*xf32>) -> tensor<*xf32>
  %b = kiln.binary "mul" %u, %s1 : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %sig = kiln.unary "sigmoid" %g : (tensor<*xf32>) -> tensor<*xf32>
  %gs = kiln.binary "mul" %g, %sig : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %c = kiln.binary "mul" %gs, %u : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %a, %b, %c : tensor<*xf32>, tensor<*xf32>, tensor<*xf32>
}

// -----

// Near misses: silu(g) is also returned; sigmoid of another value than the one
// it multiplies.
// CHECK-LABEL: func.func @swiglu_near_misses(
// CHECK-NOT:     kiln.swiglu
// CHECK:         return
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 0
func.func @swiglu_near_misses(%g: tensor<4xf32>, %u: tensor<4xf32>, %h: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %s = kiln.unary "silu" %g : (tensor<4xf32>) -> tensor<4xf32>
  %a = kiln.binary "mul" %s, %u : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %sig = kiln.unary "sigmoid" %h : (tensor<4xf32>) -> tensor<4xf32>
  %gs = kiln.binary "mul" %g, %sig : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %c = kiln.binary "mul" %gs, %u : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %a, %s, %c : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

// -----

// rotate_half as traced: x * cos + cat(-x[..., h:], x[..., :h], -1) * sin with
// h = x.size(-1) // 2, the slices on dim 3 of a 4-d x. Then the same with a
// constant h = 4 = 8 // 2 and the add/mul operands swapped.
// CHECK-LABEL: func.func @rope(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<1x4x6x8xf32>, %[[COS:[^:]+]]: tensor<6x8xf32>, %[[SIN:[^:]+]]: tensor<6x8xf32>
// CHECK:         %[[A:.+]] = kiln.rope %[[X]], %[[COS]], %[[SIN]] style "rotate_half" : (tensor<1x4x6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<1x4x6x8xf32>
// CHECK:         %[[B:.+]] = kiln.rope %[[X]], %[[COS]], %[[SIN]] style "rotate_half"
// CHECK:         return %[[A]], %[[B]]
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 2, attention 0
func.func @rope(%x: tensor<1x4x6x8xf32>, %cos: tensor<6x8xf32>, %sin: tensor<6x8xf32>) -> (tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>) {
  %c0 = kiln.constant dense<0> : tensor<i64>
  %c2 = kiln.constant dense<2> : tensor<i64>
  %c4 = kiln.constant dense<4> : tensor<i64>
  %end = kiln.constant dense<9223372036854775807> : tensor<i64>
  %xc = kiln.binary "mul" %x, %cos : (tensor<1x4x6x8xf32>, tensor<6x8xf32>) -> tensor<1x4x6x8xf32>
  %d = kiln.dim_size %x dim -1 : (tensor<1x4x6x8xf32>) -> tensor<i64>
  %h = kiln.binary "floor_div" %d, %c2 : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %x1 = kiln.slice %x, %c0, %h dim 3 step 1 : (tensor<1x4x6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<1x4x6x4xf32>
  %x2 = kiln.slice %x, %h, %end dim 3 step 1 : (tensor<1x4x6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<1x4x6x4xf32>
  %n = kiln.unary "neg" %x2 : (tensor<1x4x6x4xf32>) -> tensor<1x4x6x4xf32>
  %rot = kiln.concat %n, %x1 dim -1 : (tensor<1x4x6x4xf32>, tensor<1x4x6x4xf32>) -> tensor<1x4x6x8xf32>
  %rs = kiln.binary "mul" %rot, %sin : (tensor<1x4x6x8xf32>, tensor<6x8xf32>) -> tensor<1x4x6x8xf32>
  %a = kiln.binary "add" %xc, %rs : (tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>) -> tensor<1x4x6x8xf32>

  %xc2 = kiln.binary "mul" %cos, %x : (tensor<6x8xf32>, tensor<1x4x6x8xf32>) -> tensor<1x4x6x8xf32>
  %y1 = kiln.slice %x, %c0, %c4 dim -1 step 1 : (tensor<1x4x6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<1x4x6x4xf32>
  %y2 = kiln.slice %x, %c4, %end dim -1 step 1 : (tensor<1x4x6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<1x4x6x4xf32>
  %m = kiln.unary "neg" %y2 : (tensor<1x4x6x4xf32>) -> tensor<1x4x6x4xf32>
  %rot2 = kiln.concat %m, %y1 dim 3 : (tensor<1x4x6x4xf32>, tensor<1x4x6x4xf32>) -> tensor<1x4x6x8xf32>
  %rs2 = kiln.binary "mul" %sin, %rot2 : (tensor<6x8xf32>, tensor<1x4x6x8xf32>) -> tensor<1x4x6x8xf32>
  %b = kiln.binary "add" %rs2, %xc2 : (tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>) -> tensor<1x4x6x8xf32>
  return %a, %b : tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>
}

// -----

// Near misses: a split at 3 of 8 (not the half); the halves concatenated in the
// other order (cat(x1, -x2) is not rotate_half); cos multiplying another value.
// CHECK-LABEL: func.func @rope_near_misses(
// CHECK-NOT:     kiln.rope
// CHECK:         return
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 0
func.func @rope_near_misses(%x: tensor<6x8xf32>, %z: tensor<6x8xf32>, %cos: tensor<6x8xf32>, %sin: tensor<6x8xf32>) -> (tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>) {
  %c0 = kiln.constant dense<0> : tensor<i64>
  %c3 = kiln.constant dense<3> : tensor<i64>
  %c4 = kiln.constant dense<4> : tensor<i64>
  %end = kiln.constant dense<9223372036854775807> : tensor<i64>
  %xc = kiln.binary "mul" %x, %cos : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  %x1 = kiln.slice %x, %c0, %c3 dim 1 step 1 : (tensor<6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<6x3xf32>
  %x2 = kiln.slice %x, %c3, %end dim 1 step 1 : (tensor<6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<6x5xf32>
  %n = kiln.unary "neg" %x2 : (tensor<6x5xf32>) -> tensor<6x5xf32>
  %rot = kiln.concat %n, %x1 dim -1 : (tensor<6x5xf32>, tensor<6x3xf32>) -> tensor<6x8xf32>
  %rs = kiln.binary "mul" %rot, %sin : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  %a = kiln.binary "add" %xc, %rs : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>

  %xc2 = kiln.binary "mul" %x, %cos : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  %y1 = kiln.slice %x, %c0, %c4 dim 1 step 1 : (tensor<6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<6x4xf32>
  %y2 = kiln.slice %x, %c4, %end dim 1 step 1 : (tensor<6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<6x4xf32>
  %m = kiln.unary "neg" %y2 : (tensor<6x4xf32>) -> tensor<6x4xf32>
  %rot2 = kiln.concat %y1, %m dim -1 : (tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<6x8xf32>
  %rs2 = kiln.binary "mul" %rot2, %sin : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  %b = kiln.binary "add" %xc2, %rs2 : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>

  %zc = kiln.binary "mul" %z, %cos : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  %w1 = kiln.slice %x, %c0, %c4 dim 1 step 1 : (tensor<6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<6x4xf32>
  %w2 = kiln.slice %x, %c4, %end dim 1 step 1 : (tensor<6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<6x4xf32>
  %k = kiln.unary "neg" %w2 : (tensor<6x4xf32>) -> tensor<6x4xf32>
  %rot3 = kiln.concat %k, %w1 dim -1 : (tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<6x8xf32>
  %rs3 = kiln.binary "mul" %rot3, %sin : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  %c = kiln.binary "add" %zc, %rs3 : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  return %a, %b, %c : tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>
}

// -----

// Grouped-query causal attention as traced from the Llama model (unranked, ranks
// and head counts known from the reshapes): k/v repeat_interleave'd by 2 on the
// head dim, q has 4 = 2 * 2 heads, scores / sqrt(8), the causal mask
// triu(ones(T, T, bool), 1) filled with -inf. The scale is 1 / 2.82842708.
// CHECK-LABEL: func.func @attention_gqa(
// CHECK:         %[[Q:.+]] = kiln.transpose %{{.+}} dim0 1 dim1 2
// CHECK:         %[[K:.+]] = kiln.transpose %{{.+}} dim0 1 dim1 2
// CHECK:         %[[V:.+]] = kiln.transpose %{{.+}} dim0 1 dim1 2
// CHECK-NEXT:    %[[O:.+]] = kiln.attention %[[Q]], %[[K]], %[[V]] scale 0.3535533{{[0-9]+}} causal true : (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    return %[[O]]
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 1
func.func @attention_gqa(%xq: tensor<*xf32>, %xk: tensor<*xf32>, %xv: tensor<*xf32>, %b: tensor<i64>, %t: tensor<i64>) -> tensor<*xf32> {
  %c2 = kiln.constant dense<2> : tensor<i64>
  %c4 = kiln.constant dense<4> : tensor<i64>
  %c8 = kiln.constant dense<8> : tensor<i64>
  %ninf = kiln.constant dense<0xFF800000> : tensor<f32>
  %sqrt = kiln.constant dense<2.82842708> : tensor<f32>
  %qs = kiln.stack %b, %t, %c4, %c8 dim 0 : (tensor<i64>, tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<4xi64>
  %kvs = kiln.stack %b, %t, %c2, %c8 dim 0 : (tensor<i64>, tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<4xi64>
  %q0 = kiln.reshape %xq, %qs : (tensor<*xf32>, tensor<4xi64>) -> tensor<*xf32>
  %q = kiln.transpose %q0 dim0 1 dim1 2 : (tensor<*xf32>) -> tensor<*xf32>
  %k0 = kiln.reshape %xk, %kvs : (tensor<*xf32>, tensor<4xi64>) -> tensor<*xf32>
  %k = kiln.transpose %k0 dim0 1 dim1 2 : (tensor<*xf32>) -> tensor<*xf32>
  %v0 = kiln.reshape %xv, %kvs : (tensor<*xf32>, tensor<4xi64>) -> tensor<*xf32>
  %v = kiln.transpose %v0 dim0 1 dim1 2 : (tensor<*xf32>) -> tensor<*xf32>
  %kr = kiln.repeat_interleave %k repeats 2 dim 1 : (tensor<*xf32>) -> tensor<*xf32>
  %vr = kiln.repeat_interleave %v repeats 2 dim 1 : (tensor<*xf32>) -> tensor<*xf32>
  %kt = kiln.transpose %kr dim0 -2 dim1 -1 : (tensor<*xf32>) -> tensor<*xf32>
  %s = kiln.matmul %q, %kt : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %ss = kiln.binary "div" %s, %sqrt : (tensor<*xf32>, tensor<f32>) -> tensor<*xf32>
  %ms = kiln.stack %t, %t dim 0 : (tensor<i64>, tensor<i64>) -> tensor<2xi64>
  %ones = kiln.full %ms value 1.0 dtype "i1" : (tensor<2xi64>) -> tensor<*xi1>
  %mask = kiln.triangular %ones upper true diagonal 1 : (tensor<*xi1>) -> tensor<*xi1>
  %masked = kiln.where %mask, %ninf, %ss : (tensor<*xi1>, tensor<f32>, tensor<*xf32>) -> tensor<*xf32>
  %p = kiln.softmax %masked dim -1 log false : (tensor<*xf32>) -> tensor<*xf32>
  %o = kiln.matmul %p, %vr : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %o : tensor<*xf32>
}

// -----

// Static shapes: the causal mask is a folded constant (triu(ones(3, 3), 1));
// multi-head (no repeat), scale by multiplication, no mask at all in the second.
// CHECK-LABEL: func.func @attention_static(
// CHECK-SAME:    %[[Q:[^:]+]]: tensor<1x2x3x4xf32>, %[[K:[^:]+]]: tensor<1x2x3x4xf32>, %[[V:[^:]+]]: tensor<1x2x3x4xf32>
// CHECK:         %[[A:.+]] = kiln.attention %[[Q]], %[[K]], %[[V]] scale 5.000000e-01 causal true : (tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
// CHECK:         %[[B:.+]] = kiln.attention %[[Q]], %[[K]], %[[V]] scale 1.000000e+00 causal false
// CHECK:         return %[[A]], %[[B]]
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 2
func.func @attention_static(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>) -> (tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) {
  %half = kiln.constant dense<0.5> : tensor<f32>
  %ninf = kiln.constant dense<0xFF800000> : tensor<f32>
  %mask = kiln.constant dense<[[false, true, true], [false, false, true], [false, false, false]]> : tensor<3x3xi1>
  %kt = kiln.transpose %k dim0 2 dim1 3 : (tensor<1x2x3x4xf32>) -> tensor<1x2x4x3xf32>
  %s = kiln.matmul %q, %kt : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %ss = kiln.binary "mul" %half, %s : (tensor<f32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %masked = kiln.where %mask, %ninf, %ss : (tensor<3x3xi1>, tensor<f32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %p = kiln.softmax %masked dim 3 log false : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %o = kiln.matmul %p, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>

  %kt2 = kiln.transpose %k dim0 -1 dim1 -2 : (tensor<1x2x3x4xf32>) -> tensor<1x2x4x3xf32>
  %s2 = kiln.matmul %q, %kt2 : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %p2 = kiln.softmax %s2 dim -1 log false : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %o2 = kiln.matmul %p2, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %o, %o2 : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>
}

// -----

// Near misses, none fused: a mask that is not the causal one (diagonal 2 lets
// each query see one key ahead); a constant mask that is not triangular; a
// fill of 0 instead of -inf; k and v repeated by different factors; the scores
// also returned; softmax over dim 2.
// CHECK-LABEL: func.func @attention_near_misses(
// CHECK-NOT:     kiln.attention
// CHECK:         return
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 0
func.func @attention_near_misses(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>, %k1: tensor<1x1x3x4xf32>, %v1: tensor<1x1x3x4xf32>, %t: tensor<i64>)
    -> (tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) {
  %ninf = kiln.constant dense<0xFF800000> : tensor<f32>
  %zero = kiln.constant dense<0.0> : tensor<f32>
  %ms = kiln.stack %t, %t dim 0 : (tensor<i64>, tensor<i64>) -> tensor<2xi64>
  %ones = kiln.full %ms value 1.0 dtype "i1" : (tensor<2xi64>) -> tensor<*xi1>
  %wide = kiln.triangular %ones upper true diagonal 2 : (tensor<*xi1>) -> tensor<*xi1>
  %kt0 = kiln.transpose %k dim0 2 dim1 3 : (tensor<1x2x3x4xf32>) -> tensor<1x2x4x3xf32>
  %s0 = kiln.matmul %q, %kt0 : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %m0 = kiln.where %wide, %ninf, %s0 : (tensor<*xi1>, tensor<f32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %p0 = kiln.softmax %m0 dim -1 log false : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %o0 = kiln.matmul %p0, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>

  %diag = kiln.constant dense<[[true, false, false], [false, true, false], [false, false, true]]> : tensor<3x3xi1>
  %kt1 = kiln.transpose %k dim0 2 dim1 3 : (tensor<1x2x3x4xf32>) -> tensor<1x2x4x3xf32>
  %s1 = kiln.matmul %q, %kt1 : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %m1 = kiln.where %diag, %ninf, %s1 : (tensor<3x3xi1>, tensor<f32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %p1 = kiln.softmax %m1 dim -1 log false : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %o1 = kiln.matmul %p1, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>

  %causal = kiln.triangular %ones upper true diagonal 1 : (tensor<*xi1>) -> tensor<*xi1>
  %kt2 = kiln.transpose %k dim0 2 dim1 3 : (tensor<1x2x3x4xf32>) -> tensor<1x2x4x3xf32>
  %s2 = kiln.matmul %q, %kt2 : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %m2 = kiln.where %causal, %zero, %s2 : (tensor<*xi1>, tensor<f32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %p2 = kiln.softmax %m2 dim -1 log false : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %o2 = kiln.matmul %p2, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>

  %kr = kiln.repeat_interleave %k1 repeats 2 dim 1 : (tensor<1x1x3x4xf32>) -> tensor<1x2x3x4xf32>
  %kt3 = kiln.transpose %kr dim0 2 dim1 3 : (tensor<1x2x3x4xf32>) -> tensor<1x2x4x3xf32>
  %s3 = kiln.matmul %q, %kt3 : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %p3 = kiln.softmax %s3 dim -1 log false : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %o3 = kiln.matmul %p3, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>

  %kt4 = kiln.transpose %k dim0 2 dim1 3 : (tensor<1x2x3x4xf32>) -> tensor<1x2x4x3xf32>
  %s4 = kiln.matmul %q, %kt4 : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %p4 = kiln.softmax %s4 dim -1 log false : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %o4 = kiln.matmul %p4, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>

  %kt5 = kiln.transpose %k dim0 2 dim1 3 : (tensor<1x2x3x4xf32>) -> tensor<1x2x4x3xf32>
  %s5 = kiln.matmul %q, %kt5 : (tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32>) -> tensor<1x2x3x3xf32>
  %p5 = kiln.softmax %s5 dim 2 log false : (tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  %o5 = kiln.matmul %p5, %v : (tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %o0, %o1, %o2, %o3, %o4, %s4, %o5 : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32>
}

// -----

// matmul(a, b.transpose(-2, -1)) reads b transposed; also with the dims named
// positively on a 3-d b (1, 2) and swapped (-1, -2).
// CHECK-LABEL: func.func @matmul_transpose_b(
// CHECK-SAME:    %[[A:[^:]+]]: tensor<*xf32>, %[[B:[^:]+]]: tensor<*xf32>, %[[C:[^:]+]]: tensor<2x5x4xf32>
// CHECK-NOT:     kiln.transpose
// CHECK:         %[[X:.+]] = kiln.matmul %[[A]], %[[B]] {transpose_b = true} : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
// CHECK:         %[[Y:.+]] = kiln.matmul %{{.+}}, %[[C]] {transpose_b = true} : (tensor<2x3x4xf32>, tensor<2x5x4xf32>) -> tensor<2x3x5xf32>
// CHECK:         %[[Z:.+]] = kiln.matmul %{{.+}}, %[[C]] {transpose_b = true}
// CHECK:         return %[[X]], %[[Y]], %[[Z]]
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 0, matmul transpose_b 3
func.func @matmul_transpose_b(%a: tensor<*xf32>, %b: tensor<*xf32>, %c: tensor<2x5x4xf32>, %d: tensor<2x3x4xf32>) -> (tensor<*xf32>, tensor<2x3x5xf32>, tensor<2x3x5xf32>) {
  %bt = kiln.transpose %b dim0 -2 dim1 -1 : (tensor<*xf32>) -> tensor<*xf32>
  %x = kiln.matmul %a, %bt : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %ct = kiln.transpose %c dim0 1 dim1 2 : (tensor<2x5x4xf32>) -> tensor<2x4x5xf32>
  %y = kiln.matmul %d, %ct : (tensor<2x3x4xf32>, tensor<2x4x5xf32>) -> tensor<2x3x5xf32>
  %ct2 = kiln.transpose %c dim0 -1 dim1 -2 : (tensor<2x5x4xf32>) -> tensor<2x4x5xf32>
  %z = kiln.matmul %d, %ct2 : (tensor<2x3x4xf32>, tensor<2x4x5xf32>) -> tensor<2x3x5xf32>
  return %x, %y, %z : tensor<*xf32>, tensor<2x3x5xf32>, tensor<2x3x5xf32>
}

// -----

// Near misses: the transposed b is also returned; a transpose of dims 0 and 1
// (not the last two) of a 3-d b; of dims 1, 2 of an unranked b (rank unknown).
// CHECK-LABEL: func.func @matmul_transpose_near_misses(
// CHECK-NOT:     transpose_b
// CHECK:         return
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 0, attention 0, matmul transpose_b 0
func.func @matmul_transpose_near_misses(%a: tensor<4x3xf32>, %b: tensor<5x3xf32>, %c: tensor<4x2x3xf32>, %d: tensor<2x5x4xf32>, %u: tensor<*xf32>)
    -> (tensor<4x5xf32>, tensor<3x5xf32>, tensor<2x5x3xf32>, tensor<*xf32>) {
  %bt = kiln.transpose %b dim0 0 dim1 1 : (tensor<5x3xf32>) -> tensor<3x5xf32>
  %x = kiln.matmul %a, %bt : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  %ct = kiln.transpose %c dim0 0 dim1 1 : (tensor<4x2x3xf32>) -> tensor<2x4x3xf32>
  %y = kiln.matmul %d, %ct : (tensor<2x5x4xf32>, tensor<2x4x3xf32>) -> tensor<2x5x3xf32>
  %ut = kiln.transpose %u dim0 1 dim1 2 : (tensor<*xf32>) -> tensor<*xf32>
  %z = kiln.matmul %u, %ut : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %x, %bt, %y, %z : tensor<4x5xf32>, tensor<3x5xf32>, tensor<2x5x3xf32>, tensor<*xf32>
}

// -----

// Interleaved pairs (GPT-J): stack(-x[..., 1::2], x[..., ::2], -1).flatten(-2).
// CHECK-LABEL: func.func @rope_interleaved(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<2x6x8xf32>, %[[COS:[^:]+]]: tensor<6x8xf32>, %[[SIN:[^:]+]]: tensor<6x8xf32>
// CHECK:         %[[A:.+]] = kiln.rope %[[X]], %[[COS]], %[[SIN]] style "interleaved" : (tensor<2x6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<2x6x8xf32>
// CHECK-NEXT:    return %[[A]]
// REPORT: remark: kiln-fuse: rms_norm 0, swiglu 0, rope 1, attention 0
func.func @rope_interleaved(%x: tensor<2x6x8xf32>, %cos: tensor<6x8xf32>, %sin: tensor<6x8xf32>) -> tensor<2x6x8xf32> {
  %c0 = kiln.constant dense<0> : tensor<i64>
  %c1 = kiln.constant dense<1> : tensor<i64>
  %end = kiln.constant dense<9223372036854775807> : tensor<i64>
  %xc = kiln.binary "mul" %x, %cos : (tensor<2x6x8xf32>, tensor<6x8xf32>) -> tensor<2x6x8xf32>
  %odd = kiln.slice %x, %c1, %end dim -1 step 2 : (tensor<2x6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<2x6x4xf32>
  %even = kiln.slice %x, %c0, %end dim 2 step 2 : (tensor<2x6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<2x6x4xf32>
  %n = kiln.unary "neg" %odd : (tensor<2x6x4xf32>) -> tensor<2x6x4xf32>
  %st = kiln.stack %n, %even dim -1 : (tensor<2x6x4xf32>, tensor<2x6x4xf32>) -> tensor<2x6x4x2xf32>
  %rot = kiln.flatten %st start_dim -2 end_dim -1 : (tensor<2x6x4x2xf32>) -> tensor<2x6x8xf32>
  %rs = kiln.binary "mul" %rot, %sin : (tensor<2x6x8xf32>, tensor<6x8xf32>) -> tensor<2x6x8xf32>
  %a = kiln.binary "add" %xc, %rs : (tensor<2x6x8xf32>, tensor<2x6x8xf32>) -> tensor<2x6x8xf32>
  return %a : tensor<2x6x8xf32>
}

// -----

// Near miss: the pairs stacked the other way round (x[::2], -x[1::2]) rotate
// the other direction; not fused.
// CHECK-LABEL: func.func @rope_interleaved_near_miss(
// CHECK-NOT:     kiln.rope
// CHECK:         return
func.func @rope_interleaved_near_miss(%x: tensor<6x8xf32>, %cos: tensor<6x8xf32>, %sin: tensor<6x8xf32>) -> tensor<6x8xf32> {
  %c0 = kiln.constant dense<0> : tensor<i64>
  %c1 = kiln.constant dense<1> : tensor<i64>
  %end = kiln.constant dense<9223372036854775807> : tensor<i64>
  %xc = kiln.binary "mul" %x, %cos : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  %odd = kiln.slice %x, %c1, %end dim -1 step 2 : (tensor<6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<6x4xf32>
  %even = kiln.slice %x, %c0, %end dim -1 step 2 : (tensor<6x8xf32>, tensor<i64>, tensor<i64>) -> tensor<6x4xf32>
  %n = kiln.unary "neg" %odd : (tensor<6x4xf32>) -> tensor<6x4xf32>
  %st = kiln.stack %even, %n dim -1 : (tensor<6x4xf32>, tensor<6x4xf32>) -> tensor<6x4x2xf32>
  %rot = kiln.flatten %st start_dim -2 end_dim -1 : (tensor<6x4x2xf32>) -> tensor<6x8xf32>
  %rs = kiln.binary "mul" %rot, %sin : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  %a = kiln.binary "add" %xc, %rs : (tensor<6x8xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
  return %a : tensor<6x8xf32>
}

// -----

// A cast of f32 k to an f16 cache's type folds into the write (the write
// rounds); a cast that something else reads stays for it; a cast to another
// type than the state's (f16 values for an f32 state) is left alone.
// CHECK-LABEL: func.func @cache_write_cast(
// CHECK-SAME:    %[[K:[^:]+]]: tensor<1x2x1x8xf32>, %[[P:[^:]+]]: tensor<1xi64>
// CHECK:         %[[S:.+]] = kiln.state "k_cache_0" : tensor<1x2x16x8xf16>
// CHECK-NEXT:    %[[W:.+]] = kiln.cache_write %[[S]][%[[P]]], %[[K]] dim 2 : (tensor<1x2x16x8xf16>, tensor<1xi64>, tensor<1x2x1x8xf32>) -> tensor<1x2x16x8xf16>
// CHECK-NEXT:    %[[S2:.+]] = kiln.state "v_cache_0" : tensor<1x2x16x8xf16>
// CHECK-NEXT:    %[[C:.+]] = kiln.cast %[[K]] dtype "f16"
// CHECK-NEXT:    %[[W2:.+]] = kiln.cache_write %[[S2]][%[[P]]], %[[K]] dim 2 : (tensor<1x2x16x8xf16>, tensor<1xi64>, tensor<1x2x1x8xf32>)
// CHECK-NEXT:    %[[S3:.+]] = kiln.state "f32_cache" : tensor<1x2x16x8xf32>
// CHECK-NEXT:    %[[C3:.+]] = kiln.cast %[[K]] dtype "f16"
// CHECK-NEXT:    %[[W3:.+]] = kiln.cache_write %[[S3]][%[[P]]], %[[C3]] dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf16>)
// CHECK-NEXT:    return %[[W]], %[[W2]], %[[C]], %[[W3]]
func.func @cache_write_cast(%k: tensor<1x2x1x8xf32>, %p: tensor<1xi64>)
    -> (tensor<1x2x16x8xf16>, tensor<1x2x16x8xf16>, tensor<1x2x1x8xf16>, tensor<1x2x16x8xf32>) {
  %s = kiln.state "k_cache_0" : tensor<1x2x16x8xf16>
  %c = kiln.cast %k dtype "f16" : (tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf16>
  %w = kiln.cache_write %s[%p], %c dim 2 : (tensor<1x2x16x8xf16>, tensor<1xi64>, tensor<1x2x1x8xf16>) -> tensor<1x2x16x8xf16>
  %s2 = kiln.state "v_cache_0" : tensor<1x2x16x8xf16>
  %c2 = kiln.cast %k dtype "f16" : (tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf16>
  %w2 = kiln.cache_write %s2[%p], %c2 dim 2 : (tensor<1x2x16x8xf16>, tensor<1xi64>, tensor<1x2x1x8xf16>) -> tensor<1x2x16x8xf16>
  %s3 = kiln.state "f32_cache" : tensor<1x2x16x8xf32>
  %c3 = kiln.cast %k dtype "f16" : (tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf16>
  %w3 = kiln.cache_write %s3[%p], %c3 dim 2 : (tensor<1x2x16x8xf32>, tensor<1xi64>, tensor<1x2x1x8xf16>) -> tensor<1x2x16x8xf32>
  return %w, %w2, %c2, %w3 : tensor<1x2x16x8xf16>, tensor<1x2x16x8xf16>, tensor<1x2x1x8xf16>, tensor<1x2x16x8xf32>
}
