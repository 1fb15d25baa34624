// kiln-quantize: f32 linear weights / embedding tables -> !kiln.qweight.
// RUN: kiln-opt %s --split-input-file --kiln-quantize="mode=int8" | FileCheck %s --check-prefix=INT8
// RUN: kiln-opt %s --split-input-file --kiln-quantize="mode=int4 group-size=32" | FileCheck %s --check-prefix=G32
// RUN: kiln-opt %s --split-input-file --kiln-quantize="mode=int4 group-size=64" | FileCheck %s --check-prefix=G64
// RUN: kiln-opt %s --split-input-file --kiln-quantize="mode=int4 group-size=128" | FileCheck %s --check-prefix=G128
// RUN: kiln-opt %s --split-input-file --kiln-quantize="mode=none" | FileCheck %s --check-prefix=NONE
// RUN: kiln-opt %s --split-input-file --kiln-quantize="mode=int4 group-size=32 report=true" 2>&1 >/dev/null | FileCheck %s --check-prefix=REPORT

// int8 per output channel. Row 0: max|w| = 7.9375, scale = 7.9375 / 127 =
// 0.0625 (exact in f16); q = w / 0.0625 = [127, -16, 8, 0.5 -> 1] (round half
// away from zero) = bytes 7F F0 08 01 (printed as hex: 256 elements); the
// other 124 in-features are 0. Row 1 is all zero:
// scale 0, q 0. (Every weight here has 128 in-features so that all group
// sizes apply; quantize-invalid.mlir has the rejected ones.)
// INT8-LABEL: func.func @int8_rows(
// INT8:         %[[Q:.+]] = kiln.qconstant dense<"0x7FF00801{{0+}}"> : tensor<2x128xi8>
// INT8-SAME:      scales dense<{{\[}}[6.250000e-02], [0.000000e+00]]> : tensor<2x1xf16> : !kiln.qweight<i8, [2, 128]>
// INT8-NOT:     kiln.constant
// INT8:         kiln.linear %{{.+}}, %[[Q]] : (tensor<3x128xf32>, !kiln.qweight<i8, [2, 128]>) -> tensor<3x2xf32>
// NONE-LABEL: func.func @int8_rows(
// NONE:         kiln.constant dense<"0x{{.+}}"> : tensor<2x128xf32>
// NONE-NOT:     kiln.qconstant
func.func @int8_rows(%x: tensor<3x128xf32>) -> tensor<3x2xf32> {
  %w = kiln.constant dense<[[7.9375, -1.0, 0.5, 0.03125, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x128xf32>
  %y = kiln.linear %x, %w : (tensor<3x128xf32>, tensor<2x128xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// int4 packing: the first group of 32 (the other 96 in-features are 0, so
// their groups have scale 0). max|w| = 8, scale = f16(8 / 7) =
// 1.142578125; q = round(w / scale) = [-7, -7, -6, -6, -5, -5, -4, -4, -4, -3,
// -3, -2, -2, -1, -1, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 7].
// Element 2k is the low nibble, 2k+1 the high one: (-7, -7) -> 0x99 = -103,
// (-6, -6) -> 0xAA = -86, ..., (6, 7) -> 0x76 = 118.
// G32-LABEL: func.func @int4_packing(
// G32:         %[[Q:.+]] = kiln.qconstant dense<{{\[\[}}-103, -86, -69, -52, -36, -19, -2, 15, 0, 17, 34, 51, 68, 84, 101, 118, 0, 0, {{.*}}]]> : tensor<1x64xi8>
// G32-SAME:      scales dense<{{\[\[}}1.142580e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00]]> : tensor<1x4xf16> : !kiln.qweight<i4, [1, 128], group = 32>
// G32:         kiln.linear %{{.+}}, %[[Q]]
// INT8-LABEL: func.func @int4_packing(
// INT8:         kiln.qconstant {{.+}} : tensor<1x128xi8> scales {{.+}} : tensor<1x1xf16> : !kiln.qweight<i8, [1, 128]>
func.func @int4_packing(%x: tensor<2x128xf32>) -> tensor<2x1xf32> {
  %w = kiln.constant dense<[[-8.0, -7.5, -7.0, -6.5, -6.0, -5.5, -5.0, -4.5, -4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<1x128xf32>
  %y = kiln.linear %x, %w : (tensor<2x128xf32>, tensor<1x128xf32>) -> tensor<2x1xf32>
  return %y : tensor<2x1xf32>
}

// -----

// Group sizes 32/64/128 on a [2, 128] weight: 4, 2 and 1 scales per row.
// Every value is -0.7: scale = f16(0.1) = 0.0999755859, q = -7 = nibble 0x9,
// so every byte is 0x99 = -103. int8: scale = f16(0.7 / 127) = 0.00551224,
// q = -127.
// G32-LABEL: func.func @groups(
// G32:         kiln.qconstant dense<-103> : tensor<2x64xi8> scales dense<9.997550e-02> : tensor<2x4xf16> : !kiln.qweight<i4, [2, 128], group = 32>
// G64-LABEL: func.func @groups(
// G64:         kiln.qconstant dense<-103> : tensor<2x64xi8> scales dense<9.997550e-02> : tensor<2x2xf16> : !kiln.qweight<i4, [2, 128], group = 64>
// G128-LABEL: func.func @groups(
// G128:        kiln.qconstant dense<-103> : tensor<2x64xi8> scales dense<9.997550e-02> : tensor<2x1xf16> : !kiln.qweight<i4, [2, 128], group = 128>
// INT8-LABEL: func.func @groups(
// INT8:         kiln.qconstant dense<-127> : tensor<2x128xi8> scales dense<5.512240e-03> : tensor<2x1xf16> : !kiln.qweight<i8, [2, 128]>
func.func @groups(%x: tensor<1x128xf32>) -> tensor<1x2xf32> {
  %w = kiln.constant dense<-0.7> : tensor<2x128xf32>
  %y = kiln.linear %x, %w : (tensor<1x128xf32>, tensor<2x128xf32>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}

// -----

// A tied embedding and output head (one constant after kiln-dedup-weights) is
// quantized once: one qconstant feeds both ops.
// G32-LABEL: func.func @tied(
// G32:         %[[Q:.+]] = kiln.qconstant {{.+}} : !kiln.qweight<i4, [8, 128], group = 32>
// G32-NOT:     kiln.qconstant
// G32-NOT:     kiln.constant
// G32:         kiln.embedding %[[Q]], %{{.+}} : (!kiln.qweight<i4, [8, 128], group = 32>, tensor<3xi64>) -> tensor<3x128xf32>
// G32:         kiln.linear %{{.+}}, %[[Q]] : (tensor<3x128xf32>, !kiln.qweight<i4, [8, 128], group = 32>) -> tensor<3x8xf32>
// One weight quantized although two ops read it: 8 x 128 x 4 = 4096 bytes ->
// 8 x 64 + 8 x 4 x 2 = 576.
// REPORT: remark: kiln-quantize (int4, group 32): quantized 1 weight constants (1 distinct), 4096 -> 576 bytes; kept f32: 0
func.func @tied(%ids: tensor<3xi64>) -> tensor<3x8xf32> {
  %w = kiln.constant dense<0.25> : tensor<8x128xf32>
  %h = kiln.embedding %w, %ids : (tensor<8x128xf32>, tensor<3xi64>) -> tensor<3x128xf32>
  %logits = kiln.linear %h, %w : (tensor<3x128xf32>, tensor<8x128xf32>) -> tensor<3x8xf32>
  return %logits : tensor<3x8xf32>
}

// -----

// Non-weight uses stay f32: %t is also transposed (the whole constant stays
// f32, no quantized copy), %x2 is a linear *input*, %b is a 1-d bias, and %i
// is an i64 table. Only %w is quantized.
// G32-LABEL: func.func @other_uses(
// G32-DAG:     %[[T:.+]] = kiln.constant dense<1.500000e+00> : tensor<4x128xf32>
// G32-DAG:     %[[X2:.+]] = kiln.constant dense<2.000000e+00> : tensor<2x128xf32>
// G32-DAG:     %[[B:.+]] = kiln.constant dense<1.000000e+00> : tensor<4xf32>
// G32-DAG:     %[[I:.+]] = kiln.constant dense<3> : tensor<4x128xi64>
// G32-DAG:     %[[W:.+]] = kiln.qconstant {{.+}} : !kiln.qweight<i4, [4, 128], group = 32>
// G32:         kiln.linear %[[X2]], %[[W]], %[[B]] : (tensor<2x128xf32>, !kiln.qweight<i4, [4, 128], group = 32>, tensor<4xf32>)
// G32:         kiln.linear %{{.+}}, %[[T]] : (tensor<2x128xf32>, tensor<4x128xf32>)
// G32:         kiln.transpose %[[T]]
// G32:         kiln.embedding %[[I]]
// 2048 bytes of f32 -> 4 x 64 packed bytes + 4 x 4 f16 scales = 288 bytes.
// REPORT: remark: kiln-quantize (int4, group 32): quantized 1 weight constants (1 distinct), 2048 -> 288 bytes; kept f32: 1 (read by other ops)
func.func @other_uses(%x: tensor<2x128xf32>, %ids: tensor<3xi64>) -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<128x4xf32>, tensor<3x128xi64>) {
  %t = kiln.constant dense<1.5> : tensor<4x128xf32>
  %x2 = kiln.constant dense<2.0> : tensor<2x128xf32>
  %b = kiln.constant dense<1.0> : tensor<4xf32>
  %i = kiln.constant dense<3> : tensor<4x128xi64>
  %w = kiln.constant dense<0.5> : tensor<4x128xf32>
  %y = kiln.linear %x2, %w, %b : (tensor<2x128xf32>, tensor<4x128xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %y2 = kiln.linear %x, %t : (tensor<2x128xf32>, tensor<4x128xf32>) -> tensor<2x4xf32>
  %tt = kiln.transpose %t dim0 0 dim1 1 : (tensor<4x128xf32>) -> tensor<128x4xf32>
  %e = kiln.embedding %i, %ids : (tensor<4x128xi64>, tensor<3xi64>) -> tensor<3x128xi64>
  return %y, %y2, %tt, %e : tensor<2x4xf32>, tensor<2x4xf32>, tensor<128x4xf32>, tensor<3x128xi64>
}

// -----

// The same weight in two functions (methods) is quantized once: both
// functions get a qconstant with the same data and scales (one segment each in
// the program). q = 0.125 / f16(0.125 / 7) = 7: every byte is 0x77 = 119.
// G32-LABEL: func.func @prefill(
// G32:         kiln.qconstant dense<119> : tensor<2x64xi8> scales dense<{{.+}}> : tensor<2x4xf16>
// G32-LABEL: func.func @decode(
// G32:         kiln.qconstant dense<119> : tensor<2x64xi8> scales dense<{{.+}}> : tensor<2x4xf16>
// REPORT: remark: kiln-quantize (int4, group 32): quantized 2 weight constants (1 distinct), 1024 -> 144 bytes
func.func @prefill(%x: tensor<4x128xf32>) -> tensor<4x2xf32> {
  %w = kiln.constant dense<0.125> : tensor<2x128xf32>
  %y = kiln.linear %x, %w : (tensor<4x128xf32>, tensor<2x128xf32>) -> tensor<4x2xf32>
  return %y : tensor<4x2xf32>
}
func.func @decode(%x: tensor<1x128xf32>) -> tensor<1x2xf32> {
  %w = kiln.constant dense<0.125> : tensor<2x128xf32>
  %y = kiln.linear %x, %w : (tensor<1x128xf32>, tensor<2x128xf32>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}
