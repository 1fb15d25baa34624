// Folders of the kiln ops: sizes known at compile time become constants
// (materialized as kiln.constant), identity casts disappear, constants are
// deduplicated. Sizes that are only known at run time stay as ops.
// RUN: kiln-opt %s --canonicalize --split-input-file | FileCheck %s

// CHECK-LABEL: func.func @dim_size_static(
// CHECK-SAME:    %[[X:.+]]: tensor<2x8xf32>
// dim -1 of a 2x8 tensor is 8; dim 0 is 2.
// CHECK-DAG:     %[[EIGHT:.+]] = kiln.constant dense<8> : tensor<i64>
// CHECK-DAG:     %[[TWO:.+]] = kiln.constant dense<2> : tensor<i64>
// CHECK-NOT:     kiln.dim_size
// CHECK:         return %[[EIGHT]], %[[TWO]]
func.func @dim_size_static(%x: tensor<2x8xf32>) -> (tensor<i64>, tensor<i64>) {
  %0 = kiln.dim_size %x dim -1 : (tensor<2x8xf32>) -> tensor<i64>
  %1 = kiln.dim_size %x dim 0 : (tensor<2x8xf32>) -> tensor<i64>
  return %0, %1 : tensor<i64>, tensor<i64>
}

// -----

// The static dim of a partly dynamic tensor folds; the dynamic one stays.
// CHECK-LABEL: func.func @dim_size_dynamic(
// CHECK-SAME:    %[[X:.+]]: tensor<?x8xf32>
// CHECK-DAG:     %[[EIGHT:.+]] = kiln.constant dense<8> : tensor<i64>
// CHECK-DAG:     %[[N:.+]] = kiln.dim_size %[[X]] dim 0 : (tensor<?x8xf32>) -> tensor<i64>
// CHECK:         return %[[N]], %[[EIGHT]]
func.func @dim_size_dynamic(%x: tensor<?x8xf32>) -> (tensor<i64>, tensor<i64>) {
  %0 = kiln.dim_size %x dim 0 : (tensor<?x8xf32>) -> tensor<i64>
  %1 = kiln.dim_size %x dim 1 : (tensor<?x8xf32>) -> tensor<i64>
  return %0, %1 : tensor<i64>, tensor<i64>
}

// -----

// An unranked input has no known dims: nothing folds.
// CHECK-LABEL: func.func @dim_size_unranked(
// CHECK:         kiln.dim_size
func.func @dim_size_unranked(%x: tensor<*xf32>) -> tensor<i64> {
  %0 = kiln.dim_size %x dim 0 : (tensor<*xf32>) -> tensor<i64>
  return %0 : tensor<i64>
}

// -----

// CHECK-LABEL: func.func @shape_of_static(
// CHECK:         %[[S:.+]] = kiln.constant dense<[2, 3, 4]> : tensor<3xi64>
// CHECK-NOT:     kiln.shape_of
// CHECK:         return %[[S]]
func.func @shape_of_static(%x: tensor<2x3x4xf32>) -> tensor<3xi64> {
  %0 = kiln.shape_of %x : (tensor<2x3x4xf32>) -> tensor<3xi64>
  return %0 : tensor<3xi64>
}

// -----

// CHECK-LABEL: func.func @shape_of_dynamic(
// CHECK:         %[[S:.+]] = kiln.shape_of
// CHECK:         return %[[S]]
func.func @shape_of_dynamic(%x: tensor<2x?xf32>) -> tensor<2xi64> {
  %0 = kiln.shape_of %x : (tensor<2x?xf32>) -> tensor<2xi64>
  return %0 : tensor<2xi64>
}

// -----

// A cast to the input's own type is the input; a real cast stays.
// CHECK-LABEL: func.func @cast_identity(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<4xf32>
// CHECK:         %[[H:.+]] = kiln.cast %[[X]] dtype "f16"
// CHECK:         return %[[X]], %[[H]]
func.func @cast_identity(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf16>) {
  %0 = kiln.cast %x dtype "f32" : (tensor<4xf32>) -> tensor<4xf32>
  %1 = kiln.cast %x dtype "f16" : (tensor<4xf32>) -> tensor<4xf16>
  return %0, %1 : tensor<4xf32>, tensor<4xf16>
}

// -----

// An argument's type guessed by the front end (a bare trace carries no input
// dtypes) may really be i64: a cast of it, or of a value computed from it, is a
// real conversion and stays. A cast of a value whose type is fixed by its
// producer (a comparison is i1) still folds.
// CHECK-LABEL: func.func @cast_of_guessed_type(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<*xf32> {kiln.dtype_guessed}
// CHECK:         %[[C:.+]] = kiln.cast %[[X]] dtype "f32"
// CHECK:         %[[N:.+]] = kiln.unary "neg" %[[X]]
// CHECK:         %[[CN:.+]] = kiln.cast %[[N]] dtype "f32"
// CHECK:         %[[B:.+]] = kiln.compare "gt" %[[X]], %[[X]]
// CHECK-NOT:     kiln.cast
// CHECK:         return %[[C]], %[[CN]], %[[B]]
func.func @cast_of_guessed_type(%x: tensor<*xf32> {kiln.dtype_guessed}) -> (tensor<*xf32>, tensor<*xf32>, tensor<*xi1>) {
  %0 = kiln.cast %x dtype "f32" : (tensor<*xf32>) -> tensor<*xf32>
  %1 = kiln.unary "neg" %x : (tensor<*xf32>) -> tensor<*xf32>
  %2 = kiln.cast %1 dtype "f32" : (tensor<*xf32>) -> tensor<*xf32>
  %3 = kiln.compare "gt" %x, %x : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xi1>
  %4 = kiln.cast %3 dtype "i1" : (tensor<*xi1>) -> tensor<*xi1>
  return %0, %2, %4 : tensor<*xf32>, tensor<*xf32>, tensor<*xi1>
}

// -----

// Identical constants become one; an unused one disappears (ops are pure).
// CHECK-LABEL: func.func @constants(
// CHECK:         %[[C:.+]] = kiln.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK-NOT:     kiln.constant
// CHECK:         %[[SUM:.+]] = kiln.binary "add" %[[C]], %[[C]]
// CHECK:         return %[[SUM]]
func.func @constants() -> tensor<2xf32> {
  %0 = kiln.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %1 = kiln.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %2 = kiln.constant dense<3.0> : tensor<f32>
  %3 = kiln.binary "add" %0, %1 : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  return %3 : tensor<2xf32>
}

// -----

// Folded sizes feed the ops that use them: the static view shape of a traced
// `x.view(x.size(1), x.size(0))` becomes one constant operand of reshape.
// CHECK-LABEL: func.func @static_view(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<2x8xf32>
// CHECK:         %[[SHAPE:.+]] = kiln.constant dense<[8, 2]> : tensor<2xi64>
// CHECK-NOT:     kiln.stack
// CHECK:         kiln.reshape %[[X]], %[[SHAPE]]
func.func @static_view(%x: tensor<2x8xf32>) -> tensor<8x2xf32> {
  %0 = kiln.dim_size %x dim 0 : (tensor<2x8xf32>) -> tensor<i64>
  %1 = kiln.dim_size %x dim 1 : (tensor<2x8xf32>) -> tensor<i64>
  %2 = kiln.stack %1, %0 dim 0 : (tensor<i64>, tensor<i64>) -> tensor<2xi64>
  %3 = kiln.reshape %x, %2 : (tensor<2x8xf32>, tensor<2xi64>) -> tensor<8x2xf32>
  return %3 : tensor<8x2xf32>
}

// -----

// Size arithmetic on constants folds: (2 * 8) + 3 - 1 = 18;
// [8, 3] * [2, 2] = [16, 6].
// CHECK-LABEL: func.func @size_arithmetic(
// CHECK-DAG:     %[[A:.+]] = kiln.constant dense<18> : tensor<i64>
// CHECK-DAG:     %[[B:.+]] = kiln.constant dense<[16, 6]> : tensor<2xi64>
// CHECK-NOT:     kiln.binary
// CHECK:         return %[[A]], %[[B]]
func.func @size_arithmetic() -> (tensor<i64>, tensor<2xi64>) {
  %c2 = kiln.constant dense<2> : tensor<i64>
  %c8 = kiln.constant dense<8> : tensor<i64>
  %c3 = kiln.constant dense<3> : tensor<i64>
  %c1 = kiln.constant dense<1> : tensor<i64>
  %0 = kiln.binary "mul" %c2, %c8 : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %1 = kiln.binary "add" %0, %c3 : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %2 = kiln.binary "sub" %1, %c1 : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %v = kiln.constant dense<[8, 3]> : tensor<2xi64>
  %w = kiln.constant dense<2> : tensor<2xi64>
  %4 = kiln.binary "mul" %v, %w : (tensor<2xi64>, tensor<2xi64>) -> tensor<2xi64>
  return %2, %4 : tensor<i64>, tensor<2xi64>
}

// -----

// Not folded: broadcasting, float values, division (a zero divisor must stay a
// run-time error), and operands that are not constants.
// CHECK-LABEL: func.func @no_fold(
// CHECK-COUNT-4: kiln.binary
func.func @no_fold(%n: tensor<i64>) -> (tensor<2xi64>, tensor<f32>, tensor<i64>, tensor<i64>) {
  %c2 = kiln.constant dense<2> : tensor<i64>
  %c0 = kiln.constant dense<0> : tensor<i64>
  %v = kiln.constant dense<[8, 3]> : tensor<2xi64>
  %f = kiln.constant dense<1.5> : tensor<f32>
  %0 = kiln.binary "mul" %v, %c2 : (tensor<2xi64>, tensor<i64>) -> tensor<2xi64>
  %1 = kiln.binary "add" %f, %f : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %2 = kiln.binary "floor_div" %c2, %c0 : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %3 = kiln.binary "add" %n, %c2 : (tensor<i64>, tensor<i64>) -> tensor<i64>
  return %0, %1, %2, %3 : tensor<2xi64>, tensor<f32>, tensor<i64>, tensor<i64>
}
