// Every verifier message of !kiln.qweight and kiln.qconstant, and of linear /
// embedding with a quantized weight.
// RUN: kiln-opt %s --split-input-file --verify-diagnostics

// expected-error @+1 {{i4 qweight group must be 32, 64 or 128, got 48}}
func.func @odd_group(%w: !kiln.qweight<i4, [4, 96], group = 48>) {
  return
}

// -----

// expected-error @+1 {{i4 qweight group 128 does not divide the in-features 96}}
func.func @group_not_dividing(%w: !kiln.qweight<i4, [4, 96], group = 128>) {
  return
}

// -----

// expected-error @+1 {{i4 qweight needs `group = 32|64|128`}}
func.func @i4_without_group(%w: !kiln.qweight<i4, [4, 64]>) {
  return
}

// -----

// expected-error @+1 {{qweight element type must be i8 or i4, got 'i16'}}
func.func @bad_element(%w: !kiln.qweight<i16, [4, 64]>) {
  return
}

// -----

// expected-error @+1 {{i8 qweight has one scale per row: group must be the in-features (64), got 32}}
func.func @i8_group(%w: !kiln.qweight<i8, [4, 64], group = 32>) {
  return
}

// -----

// expected-error @+1 {{qweight dims must be static and positive, got [0, 64]}}
func.func @empty(%w: !kiln.qweight<i8, [0, 64]>) {
  return
}

// -----

func.func @data_shape() {
  // i4 data is [out, in/2] bytes.
  // expected-error @+1 {{data must be 'tensor<4x32xi8>' for '!kiln.qweight<i4, [4, 64], group = 32>', got 'tensor<4x64xi8>'}}
  %w = kiln.qconstant dense<0> : tensor<4x64xi8> scales dense<1.0> : tensor<4x2xf16>
      : !kiln.qweight<i4, [4, 64], group = 32>
  return
}

// -----

func.func @scales_shape() {
  // expected-error @+1 {{scales must be 'tensor<4x2xf16>' for '!kiln.qweight<i4, [4, 64], group = 32>', got 'tensor<4x2xf32>'}}
  %w = kiln.qconstant dense<0> : tensor<4x32xi8> scales dense<1.0> : tensor<4x2xf32>
      : !kiln.qweight<i4, [4, 64], group = 32>
  return
}

// -----

func.func @linear_f16_input(%x: tensor<2x64xf16>, %w: !kiln.qweight<i8, [4, 64]>) -> tensor<2x4xf16> {
  // expected-error @+1 {{a quantized weight needs an f32 input, got 'f16'}}
  %y = kiln.linear %x, %w : (tensor<2x64xf16>, !kiln.qweight<i8, [4, 64]>) -> tensor<2x4xf16>
  return %y : tensor<2x4xf16>
}

// -----

func.func @linear_in_features(%x: tensor<2x32xf32>, %w: !kiln.qweight<i8, [4, 64]>) -> tensor<2x4xf32> {
  // expected-error @+1 {{in-features mismatch: input has 32, weight has 64}}
  %y = kiln.linear %x, %w : (tensor<2x32xf32>, !kiln.qweight<i8, [4, 64]>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

func.func @embedding_result(%w: !kiln.qweight<i8, [4, 64]>, %ids: tensor<3xi64>) -> tensor<3x64xi8> {
  // A quantized table reads as f32.
  // expected-error @+1 {{result element type 'i8' does not match the expected 'f32'}}
  %e = kiln.embedding %w, %ids : (!kiln.qweight<i8, [4, 64]>, tensor<3xi64>) -> tensor<3x64xi8>
  return %e : tensor<3x64xi8>
}

// -----

func.func @other_op(%w: !kiln.qweight<i8, [4, 64]>) -> tensor<64x4xf32> {
  // Only linear and embedding take a quantized weight.
  // expected-error @+1 {{operand #0 must be tensor of any type values}}
  %t = "kiln.transpose"(%w) {dim0 = 0 : i64, dim1 = 1 : i64} : (!kiln.qweight<i8, [4, 64]>) -> tensor<64x4xf32>
  return %t : tensor<64x4xf32>
}
