// kiln-quantize: an int4 group size that does not divide a weight's
// in-features is an error at that weight, naming it and its shape.
// RUN: kiln-opt %s --verify-diagnostics --kiln-quantize="mode=int4 group-size=64"

func.func @not_dividing(%x: tensor<2x96xf32>) -> tensor<2x4xf32> {
  // 96 in-features are not a multiple of 64.
  // expected-error @+1 {{kiln-quantize: cannot quantize weight [4, 96] to int4 with group size 64: 64 does not divide the in-features 96}}
  %w = kiln.constant dense<0.5> : tensor<4x96xf32>
  %y = kiln.linear %x, %w : (tensor<2x96xf32>, tensor<4x96xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}
