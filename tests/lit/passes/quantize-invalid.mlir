// kiln-quantize rejects a group size it cannot use, naming the weight and its
// shape (kiln compile --quantize int4 --group-size N reports the same).
// RUN: kiln-opt %s --split-input-file --verify-diagnostics --kiln-quantize="mode=int4 group-size=48"
// RUN: kiln-opt %s --split-input-file --kiln-quantize="mode=int8" | FileCheck %s --check-prefix=INT8

func.func @odd_group(%x: tensor<2x96xf32>) -> tensor<2x4xf32> {
  // 48 is not a supported int4 group size (32, 64, 128); int8 ignores it.
  // expected-error @+1 {{kiln-quantize: cannot quantize weight [4, 96] to int4 with group size 48: the group size must be 32, 64 or 128}}
  %w = kiln.constant dense<0.5> : tensor<4x96xf32>
  %y = kiln.linear %x, %w : (tensor<2x96xf32>, tensor<4x96xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}
// INT8: kiln.qconstant {{.+}} : !kiln.qweight<i8, [4, 96]>
