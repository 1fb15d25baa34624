// Round trip of every kiln op: parse, verify, print, parse the printed form
// again (custom and generic), and check that the printed form is stable.
// Functions cover static shapes, dynamic dims and unranked tensors.
// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt %s --mlir-print-op-generic | kiln-opt | FileCheck %s

// CHECK-LABEL: func.func @constants(
// CHECK-NEXT:    %[[V0:[^ :]+]] = kiln.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK-NEXT:    %[[V1:[^ :]+]] = kiln.constant dense<7> : tensor<i64>
// CHECK-NEXT:    %[[V2:[^ :]+]] = kiln.constant dense_resource<weight0> : tensor<2x2xf32>
// CHECK-NEXT:    return %[[V0]], %[[V1]], %[[V2]] : tensor<2xf32>, tensor<i64>, tensor<2x2xf32>
func.func @constants() -> (tensor<2xf32>, tensor<i64>, tensor<2x2xf32>) {
  %0 = kiln.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %1 = kiln.constant dense<7> : tensor<i64>
  %2 = kiln.constant dense_resource<weight0> : tensor<2x2xf32>
  return %0, %1, %2 : tensor<2xf32>, tensor<i64>, tensor<2x2xf32>
}

// CHECK-LABEL: func.func @elementwise(
// CHECK-SAME:    %[[ARG0:[^:]+]]: tensor<2x4xf32>
// CHECK-SAME:    %[[ARG1:[^:]+]]: tensor<4xf32>
// CHECK-SAME:    %[[ARG2:[^:]+]]: tensor<i64>
// CHECK-SAME:    %[[ARG3:[^:]+]]: tensor<2x4xi64>
// CHECK-SAME:    %[[ARG4:[^:]+]]: tensor<2x4xi1>
// CHECK-NEXT:    %[[V0:[^ :]+]] = kiln.unary "silu" %[[ARG0]] : (tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[V1:[^ :]+]] = kiln.unary "sqrt" %[[ARG2]] : (tensor<i64>) -> tensor<f32>
// CHECK-NEXT:    %[[V2:[^ :]+]] = kiln.unary "logical_not" %[[ARG4]] : (tensor<2x4xi1>) -> tensor<2x4xi1>
// CHECK-NEXT:    %[[V3:[^ :]+]] = kiln.unary "neg" %[[ARG3]] : (tensor<2x4xi64>) -> tensor<2x4xi64>
// CHECK-NEXT:    %[[V4:[^ :]+]] = kiln.binary "add" %[[ARG0]], %[[ARG1]] : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[V5:[^ :]+]] = kiln.binary "div" %[[ARG2]], %[[ARG2]] : (tensor<i64>, tensor<i64>) -> tensor<f32>
// CHECK-NEXT:    %[[V6:[^ :]+]] = kiln.binary "mul" %[[ARG3]], %[[ARG2]] : (tensor<2x4xi64>, tensor<i64>) -> tensor<2x4xi64>
// CHECK-NEXT:    %[[V7:[^ :]+]] = kiln.binary "floor_div" %[[ARG3]], %[[ARG2]] : (tensor<2x4xi64>, tensor<i64>) -> tensor<2x4xi64>
// CHECK-NEXT:    %[[V8:[^ :]+]] = kiln.binary "pow" %[[ARG0]], %[[ARG3]] : (tensor<2x4xf32>, tensor<2x4xi64>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[V9:[^ :]+]] = kiln.compare "lt" %[[ARG3]], %[[ARG2]] : (tensor<2x4xi64>, tensor<i64>) -> tensor<2x4xi1>
// CHECK-NEXT:    %[[V10:[^ :]+]] = kiln.compare "logical_and" %[[ARG4]], %[[ARG4]] : (tensor<2x4xi1>, tensor<2x4xi1>) -> tensor<2x4xi1>
// CHECK-NEXT:    %[[V11:[^ :]+]] = kiln.where %[[ARG4]], %[[ARG1]], %[[ARG0]] : (tensor<2x4xi1>, tensor<4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[V12:[^ :]+]] = kiln.cast %[[ARG0]] dtype "f16" : (tensor<2x4xf32>) -> tensor<2x4xf16>
// CHECK-NEXT:    %[[V13:[^ :]+]] = kiln.cast %[[ARG4]] dtype "i64" : (tensor<2x4xi1>) -> tensor<2x4xi64>
// CHECK-NEXT:    %[[V14:[^ :]+]] = kiln.clamp %[[ARG0]] min 0.000000e+00 max 6.000000e+00 : (tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[V15:[^ :]+]] = kiln.clamp %[[ARG0]] max 1.000000e+00 : (tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[V16:[^ :]+]] = kiln.clamp %[[ARG3]] min -1.000000e+00 : (tensor<2x4xi64>) -> tensor<2x4xi64>
// CHECK-NEXT:    return
func.func @elementwise(%x: tensor<2x4xf32>, %y: tensor<4xf32>, %n: tensor<i64>, %i: tensor<2x4xi64>, %m: tensor<2x4xi1>) {
  %0 = kiln.unary "silu" %x : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %1 = kiln.unary "sqrt" %n : (tensor<i64>) -> tensor<f32>
  %2 = kiln.unary "logical_not" %m : (tensor<2x4xi1>) -> tensor<2x4xi1>
  %3 = kiln.unary "neg" %i : (tensor<2x4xi64>) -> tensor<2x4xi64>
  %4 = kiln.binary "add" %x, %y : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %5 = kiln.binary "div" %n, %n : (tensor<i64>, tensor<i64>) -> tensor<f32>
  %6 = kiln.binary "mul" %i, %n : (tensor<2x4xi64>, tensor<i64>) -> tensor<2x4xi64>
  %7 = kiln.binary "floor_div" %i, %n : (tensor<2x4xi64>, tensor<i64>) -> tensor<2x4xi64>
  %8 = kiln.binary "pow" %x, %i : (tensor<2x4xf32>, tensor<2x4xi64>) -> tensor<2x4xf32>
  %9 = kiln.compare "lt" %i, %n : (tensor<2x4xi64>, tensor<i64>) -> tensor<2x4xi1>
  %10 = kiln.compare "logical_and" %m, %m : (tensor<2x4xi1>, tensor<2x4xi1>) -> tensor<2x4xi1>
  %11 = kiln.where %m, %y, %x : (tensor<2x4xi1>, tensor<4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %12 = kiln.cast %x dtype "f16" : (tensor<2x4xf32>) -> tensor<2x4xf16>
  %13 = kiln.cast %m dtype "i64" : (tensor<2x4xi1>) -> tensor<2x4xi64>
  %14 = kiln.clamp %x min 0.000000e+00 max 6.000000e+00 : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %15 = kiln.clamp %x max 1.000000e+00 : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %16 = kiln.clamp %i min -1.000000e+00 : (tensor<2x4xi64>) -> tensor<2x4xi64>
  return
}

// CHECK-LABEL: func.func @reductions(
// CHECK-SAME:    %[[ARG0:[^:]+]]: tensor<2x8xf32>
// CHECK-SAME:    %[[ARG1:[^:]+]]: tensor<8xf32>
// CHECK-SAME:    %[[ARG2:[^:]+]]: tensor<8xf32>
// CHECK-SAME:    %[[ARG3:[^:]+]]: tensor<2x8xi32>
// CHECK-NEXT:    %[[V0:[^ :]+]] = kiln.reduce "sum" %[[ARG0]] dims [1] keepdim false : (tensor<2x8xf32>) -> tensor<2xf32>
// CHECK-NEXT:    %[[V1:[^ :]+]] = kiln.reduce "mean" %[[ARG0]] dims [-1] keepdim true : (tensor<2x8xf32>) -> tensor<2x1xf32>
// CHECK-NEXT:    %[[V2:[^ :]+]] = kiln.reduce "max" %[[ARG0]] dims [] keepdim false : (tensor<2x8xf32>) -> tensor<f32>
// CHECK-NEXT:    %[[V3:[^ :]+]] = kiln.reduce "sum" %[[ARG3]] dims [0, 1] keepdim true : (tensor<2x8xi32>) -> tensor<1x1xi64>
// CHECK-NEXT:    %[[V4:[^ :]+]] = kiln.argmax %[[ARG0]] dim -1 keepdim false : (tensor<2x8xf32>) -> tensor<2xi64>
// CHECK-NEXT:    %[[V5:[^ :]+]] = kiln.softmax %[[ARG0]] dim -1 log false : (tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V6:[^ :]+]] = kiln.softmax %[[ARG0]] dim 1 log true : (tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V7:[^ :]+]] = kiln.layer_norm %[[ARG0]] weight %[[ARG1]] bias %[[ARG2]] normalized_ndim 1 eps 1.000000e-05 : (tensor<2x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V8:[^ :]+]] = kiln.layer_norm %[[ARG0]] weight %[[ARG1]] normalized_ndim 1 eps 1.000000e-05 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V9:[^ :]+]] = kiln.layer_norm %[[ARG0]] bias %[[ARG2]] normalized_ndim 1 eps 1.000000e-05 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V10:[^ :]+]] = kiln.layer_norm %[[ARG0]] normalized_ndim 2 eps 1.000000e-05 : (tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V11:[^ :]+]] = kiln.rms_norm %[[ARG0]] weight %[[ARG1]] eps 9.9999999999999995E-7 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V12:[^ :]+]] = kiln.rms_norm %[[ARG0]] eps 9.9999999999999995E-7 : (tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    return
func.func @reductions(%x: tensor<2x8xf32>, %w: tensor<8xf32>, %b: tensor<8xf32>, %i: tensor<2x8xi32>) {
  %0 = kiln.reduce "sum" %x dims [1] keepdim false : (tensor<2x8xf32>) -> tensor<2xf32>
  %1 = kiln.reduce "mean" %x dims [-1] keepdim true : (tensor<2x8xf32>) -> tensor<2x1xf32>
  %2 = kiln.reduce "max" %x dims [] keepdim false : (tensor<2x8xf32>) -> tensor<f32>
  %3 = kiln.reduce "sum" %i dims [0, 1] keepdim true : (tensor<2x8xi32>) -> tensor<1x1xi64>
  %4 = kiln.argmax %x dim -1 keepdim false : (tensor<2x8xf32>) -> tensor<2xi64>
  %5 = kiln.softmax %x dim -1 log false : (tensor<2x8xf32>) -> tensor<2x8xf32>
  %6 = kiln.softmax %x dim 1 log true : (tensor<2x8xf32>) -> tensor<2x8xf32>
  %7 = kiln.layer_norm %x weight %w bias %b normalized_ndim 1 eps 1.000000e-05 : (tensor<2x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %8 = kiln.layer_norm %x weight %w normalized_ndim 1 eps 1.000000e-05 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %9 = kiln.layer_norm %x bias %b normalized_ndim 1 eps 1.000000e-05 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %10 = kiln.layer_norm %x normalized_ndim 2 eps 1.000000e-05 : (tensor<2x8xf32>) -> tensor<2x8xf32>
  %11 = kiln.rms_norm %x weight %w eps 1.000000e-06 : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %12 = kiln.rms_norm %x eps 1.000000e-06 : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// CHECK-LABEL: func.func @contractions(
// CHECK-SAME:    %[[ARG0:[^:]+]]: tensor<2x8xf32>
// CHECK-SAME:    %[[ARG1:[^:]+]]: tensor<16x8xf32>
// CHECK-SAME:    %[[ARG2:[^:]+]]: tensor<16xf32>
// CHECK-SAME:    %[[ARG3:[^:]+]]: tensor<2x3x4xf32>
// CHECK-SAME:    %[[ARG4:[^:]+]]: tensor<4x5xf32>
// CHECK-SAME:    %[[ARG5:[^:]+]]: tensor<4xf32>
// CHECK-SAME:    %[[ARG6:[^:]+]]: tensor<100x8xf32>
// CHECK-SAME:    %[[ARG7:[^:]+]]: tensor<1x4xi64>
// CHECK-SAME:    %[[ARG8:[^:]+]]: tensor<3xi64>
// CHECK-NEXT:    %[[V0:[^ :]+]] = kiln.linear %[[ARG0]], %[[ARG1]], %[[ARG2]] : (tensor<2x8xf32>, tensor<16x8xf32>, tensor<16xf32>) -> tensor<2x16xf32>
// CHECK-NEXT:    %[[V1:[^ :]+]] = kiln.linear %[[ARG0]], %[[ARG1]] : (tensor<2x8xf32>, tensor<16x8xf32>) -> tensor<2x16xf32>
// CHECK-NEXT:    %[[V2:[^ :]+]] = kiln.matmul %[[ARG3]], %[[ARG4]] : (tensor<2x3x4xf32>, tensor<4x5xf32>) -> tensor<2x3x5xf32>
// CHECK-NEXT:    %[[V3:[^ :]+]] = kiln.matmul %[[ARG3]], %[[ARG5]] : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    %[[V4:[^ :]+]] = kiln.matmul %[[ARG5]], %[[ARG5]] : (tensor<4xf32>, tensor<4xf32>) -> tensor<f32>
// CHECK-NEXT:    %[[V5:[^ :]+]] = kiln.embedding %[[ARG6]], %[[ARG7]] : (tensor<100x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
// CHECK-NEXT:    %[[V6:[^ :]+]] = kiln.index_select %[[ARG6]], %[[ARG8]] dim 0 : (tensor<100x8xf32>, tensor<3xi64>) -> tensor<3x8xf32>
// CHECK-NEXT:    %[[V7:[^ :]+]] = kiln.index_select %[[ARG6]], %[[ARG7]] dim 0 : (tensor<100x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
// CHECK-NEXT:    return
func.func @contractions(%x: tensor<2x8xf32>, %w: tensor<16x8xf32>, %b: tensor<16xf32>, %a3: tensor<2x3x4xf32>, %b2: tensor<4x5xf32>, %v: tensor<4xf32>, %table: tensor<100x8xf32>, %ids: tensor<1x4xi64>, %idx: tensor<3xi64>) {
  %0 = kiln.linear %x, %w, %b : (tensor<2x8xf32>, tensor<16x8xf32>, tensor<16xf32>) -> tensor<2x16xf32>
  %1 = kiln.linear %x, %w : (tensor<2x8xf32>, tensor<16x8xf32>) -> tensor<2x16xf32>
  %2 = kiln.matmul %a3, %b2 : (tensor<2x3x4xf32>, tensor<4x5xf32>) -> tensor<2x3x5xf32>
  %3 = kiln.matmul %a3, %v : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  %4 = kiln.matmul %v, %v : (tensor<4xf32>, tensor<4xf32>) -> tensor<f32>
  %5 = kiln.embedding %table, %ids : (tensor<100x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  %6 = kiln.index_select %table, %idx dim 0 : (tensor<100x8xf32>, tensor<3xi64>) -> tensor<3x8xf32>
  %7 = kiln.index_select %table, %ids dim 0 : (tensor<100x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  return
}

// CHECK-LABEL: func.func @shapes(
// CHECK-SAME:    %[[ARG0:[^:]+]]: tensor<2x3x4xf32>
// CHECK-SAME:    %[[ARG1:[^:]+]]: tensor<3xi64>
// CHECK-SAME:    %[[ARG2:[^:]+]]: tensor<2xi64>
// CHECK-SAME:    %[[ARG3:[^:]+]]: tensor<1x4xf32>
// CHECK-SAME:    %[[ARG4:[^:]+]]: tensor<i64>
// CHECK-NEXT:    %[[V0:[^ :]+]] = kiln.reshape %[[ARG0]], %[[ARG1]] : (tensor<2x3x4xf32>, tensor<3xi64>) -> tensor<4x3x2xf32>
// CHECK-NEXT:    %[[V1:[^ :]+]] = kiln.expand %[[ARG3]], %[[ARG2]] : (tensor<1x4xf32>, tensor<2xi64>) -> tensor<3x4xf32>
// CHECK-NEXT:    %[[V2:[^ :]+]] = kiln.permute %[[ARG0]] perm [0, 2, 1] : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
// CHECK-NEXT:    %[[V3:[^ :]+]] = kiln.permute %[[ARG0]] perm [-1, 0, 1] : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
// CHECK-NEXT:    %[[V4:[^ :]+]] = kiln.transpose %[[ARG0]] dim0 0 dim1 -1 : (tensor<2x3x4xf32>) -> tensor<4x3x2xf32>
// CHECK-NEXT:    %[[V5:[^ :]+]] = kiln.unsqueeze %[[ARG0]] dim 0 : (tensor<2x3x4xf32>) -> tensor<1x2x3x4xf32>
// CHECK-NEXT:    %[[V6:[^ :]+]] = kiln.unsqueeze %[[ARG0]] dim -1 : (tensor<2x3x4xf32>) -> tensor<2x3x4x1xf32>
// CHECK-NEXT:    %[[V7:[^ :]+]] = kiln.squeeze %[[ARG3]] dims [0] : (tensor<1x4xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %[[V8:[^ :]+]] = kiln.squeeze %[[ARG3]] dims [] : (tensor<1x4xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %[[V9:[^ :]+]] = kiln.squeeze %[[ARG3]] dims [1] : (tensor<1x4xf32>) -> tensor<1x4xf32>
// CHECK-NEXT:    %[[V10:[^ :]+]] = kiln.flatten %[[ARG0]] start_dim 1 end_dim -1 : (tensor<2x3x4xf32>) -> tensor<2x12xf32>
// CHECK-NEXT:    %[[V11:[^ :]+]] = kiln.flatten %[[ARG0]] start_dim 0 end_dim -1 : (tensor<2x3x4xf32>) -> tensor<24xf32>
// CHECK-NEXT:    %[[V12:[^ :]+]] = kiln.slice %[[ARG0]], %[[ARG4]], %[[ARG4]] dim 1 step 1 : (tensor<2x3x4xf32>, tensor<i64>, tensor<i64>) -> tensor<2x?x4xf32>
// CHECK-NEXT:    %[[V13:[^ :]+]] = kiln.slice %[[ARG0]], %[[ARG4]], %[[ARG4]] dim -1 step 2 : (tensor<2x3x4xf32>, tensor<i64>, tensor<i64>) -> tensor<2x3x2xf32>
// CHECK-NEXT:    %[[V14:[^ :]+]] = kiln.select %[[ARG0]], %[[ARG4]] dim 0 : (tensor<2x3x4xf32>, tensor<i64>) -> tensor<3x4xf32>
// CHECK-NEXT:    return
func.func @shapes(%x: tensor<2x3x4xf32>, %s3: tensor<3xi64>, %s2: tensor<2xi64>, %k: tensor<1x4xf32>, %n: tensor<i64>) {
  %0 = kiln.reshape %x, %s3 : (tensor<2x3x4xf32>, tensor<3xi64>) -> tensor<4x3x2xf32>
  %1 = kiln.expand %k, %s2 : (tensor<1x4xf32>, tensor<2xi64>) -> tensor<3x4xf32>
  %2 = kiln.permute %x perm [0, 2, 1] : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
  %3 = kiln.permute %x perm [-1, 0, 1] : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
  %4 = kiln.transpose %x dim0 0 dim1 -1 : (tensor<2x3x4xf32>) -> tensor<4x3x2xf32>
  %5 = kiln.unsqueeze %x dim 0 : (tensor<2x3x4xf32>) -> tensor<1x2x3x4xf32>
  %6 = kiln.unsqueeze %x dim -1 : (tensor<2x3x4xf32>) -> tensor<2x3x4x1xf32>
  %7 = kiln.squeeze %k dims [0] : (tensor<1x4xf32>) -> tensor<4xf32>
  %8 = kiln.squeeze %k dims [] : (tensor<1x4xf32>) -> tensor<4xf32>
  %9 = kiln.squeeze %k dims [1] : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %10 = kiln.flatten %x start_dim 1 end_dim -1 : (tensor<2x3x4xf32>) -> tensor<2x12xf32>
  %11 = kiln.flatten %x start_dim 0 end_dim -1 : (tensor<2x3x4xf32>) -> tensor<24xf32>
  %12 = kiln.slice %x, %n, %n dim 1 step 1 : (tensor<2x3x4xf32>, tensor<i64>, tensor<i64>) -> tensor<2x?x4xf32>
  %13 = kiln.slice %x, %n, %n dim -1 step 2 : (tensor<2x3x4xf32>, tensor<i64>, tensor<i64>) -> tensor<2x3x2xf32>
  %14 = kiln.select %x, %n dim 0 : (tensor<2x3x4xf32>, tensor<i64>) -> tensor<3x4xf32>
  return
}

// CHECK-LABEL: func.func @pieces(
// CHECK-SAME:    %[[ARG0:[^:]+]]: tensor<2x8xf32>
// CHECK-SAME:    %[[ARG1:[^:]+]]: tensor<2x3xf32>
// CHECK-SAME:    %[[ARG2:[^:]+]]: tensor<2x5xf32>
// CHECK-SAME:    %[[ARG3:[^:]+]]: tensor<i64>
// CHECK-SAME:    %[[ARG4:[^:]+]]: tensor<i32>
// CHECK-SAME:    %[[ARG5:[^:]+]]: tensor<4x4xf32>
// CHECK-NEXT:    %[[V0:[^ :]+]]:2 = kiln.split %[[ARG0]] dim 1 chunks 2 : (tensor<2x8xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
// CHECK-NEXT:    %[[V1:[^ :]+]]:2 = kiln.split %[[ARG0]] dim 1 sizes [6, 2] : (tensor<2x8xf32>) -> (tensor<2x6xf32>, tensor<2x2xf32>)
// CHECK-NEXT:    %[[V2:[^ :]+]]:3 = kiln.split %[[ARG0]] dim -1 split_size 3 : (tensor<2x8xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x2xf32>)
// CHECK-NEXT:    %[[V3:[^ :]+]] = kiln.concat %[[ARG1]], %[[ARG2]] dim 1 : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V4:[^ :]+]] = kiln.concat %[[ARG1]] dim 0 : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    %[[V5:[^ :]+]] = kiln.stack %[[ARG3]], %[[ARG3]], %[[ARG3]] dim 0 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<3xi64>
// CHECK-NEXT:    %[[V6:[^ :]+]] = kiln.stack %[[ARG3]], %[[ARG4]] dim 0 : (tensor<i64>, tensor<i32>) -> tensor<2xi64>
// CHECK-NEXT:    %[[V7:[^ :]+]] = kiln.stack %[[ARG1]], %[[ARG1]] dim -1 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3x2xf32>
// CHECK-NEXT:    %[[V8:[^ :]+]] = kiln.repeat_interleave %[[ARG0]] repeats 2 dim 0 : (tensor<2x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:    %[[V9:[^ :]+]] = kiln.repeat %[[ARG1]] repeats [2, 1] : (tensor<2x3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT:    %[[V10:[^ :]+]] = kiln.repeat %[[ARG1]] repeats [3, 1, 2] : (tensor<2x3xf32>) -> tensor<3x2x6xf32>
// CHECK-NEXT:    %[[V11:[^ :]+]] = kiln.triangular %[[ARG5]] upper true diagonal 1 : (tensor<4x4xf32>) -> tensor<4x4xf32>
// CHECK-NEXT:    %[[V12:[^ :]+]] = kiln.triangular %[[ARG5]] upper false diagonal 0 : (tensor<4x4xf32>) -> tensor<4x4xf32>
// CHECK-NEXT:    return
func.func @pieces(%x: tensor<2x8xf32>, %a: tensor<2x3xf32>, %b: tensor<2x5xf32>, %n: tensor<i64>, %c: tensor<i32>, %m: tensor<4x4xf32>) {
  %0:2 = kiln.split %x dim 1 chunks 2 : (tensor<2x8xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
  %1:2 = kiln.split %x dim 1 sizes [6, 2] : (tensor<2x8xf32>) -> (tensor<2x6xf32>, tensor<2x2xf32>)
  %2:3 = kiln.split %x dim -1 split_size 3 : (tensor<2x8xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x2xf32>)
  %3 = kiln.concat %a, %b dim 1 : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
  %4 = kiln.concat %a dim 0 : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %5 = kiln.stack %n, %n, %n dim 0 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<3xi64>
  %6 = kiln.stack %n, %c dim 0 : (tensor<i64>, tensor<i32>) -> tensor<2xi64>
  %7 = kiln.stack %a, %a dim -1 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3x2xf32>
  %8 = kiln.repeat_interleave %x repeats 2 dim 0 : (tensor<2x8xf32>) -> tensor<4x8xf32>
  %9 = kiln.repeat %a repeats [2, 1] : (tensor<2x3xf32>) -> tensor<4x3xf32>
  %10 = kiln.repeat %a repeats [3, 1, 2] : (tensor<2x3xf32>) -> tensor<3x2x6xf32>
  %11 = kiln.triangular %m upper true diagonal 1 : (tensor<4x4xf32>) -> tensor<4x4xf32>
  %12 = kiln.triangular %m upper false diagonal 0 : (tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// CHECK-LABEL: func.func @creation(
// CHECK-SAME:    %[[ARG0:[^:]+]]: tensor<2x8xf32>
// CHECK-SAME:    %[[ARG1:[^:]+]]: tensor<i64>
// CHECK-SAME:    %[[ARG2:[^:]+]]: tensor<2xi64>
// CHECK-NEXT:    %[[V0:[^ :]+]] = kiln.arange %[[ARG1]], %[[ARG1]], %[[ARG1]] dtype "i64" : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
// CHECK-NEXT:    %[[V1:[^ :]+]] = kiln.arange %[[ARG1]], %[[ARG1]], %[[ARG1]] dtype "f32" : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xf32>
// CHECK-NEXT:    %[[V2:[^ :]+]] = kiln.full %[[ARG2]] value 0.000000e+00 dtype "f32" : (tensor<2xi64>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[V3:[^ :]+]] = kiln.full %[[ARG2]] value -3.000000e+38 dtype "f16" : (tensor<2xi64>) -> tensor<?x?xf16>
// CHECK-NEXT:    %[[V4:[^ :]+]] = kiln.full_like %[[ARG0]] value 1.000000e+00 dtype "" : (tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    %[[V5:[^ :]+]] = kiln.full_like %[[ARG0]] value 0.000000e+00 dtype "i1" : (tensor<2x8xf32>) -> tensor<2x8xi1>
// CHECK-NEXT:    %[[V6:[^ :]+]] = kiln.dim_size %[[ARG0]] dim 1 : (tensor<2x8xf32>) -> tensor<i64>
// CHECK-NEXT:    %[[V7:[^ :]+]] = kiln.shape_of %[[ARG0]] : (tensor<2x8xf32>) -> tensor<2xi64>
// CHECK-NEXT:    %[[V8:[^ :]+]] = kiln.copy %[[ARG0]] : (tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    return
func.func @creation(%x: tensor<2x8xf32>, %n: tensor<i64>, %s: tensor<2xi64>) {
  %0 = kiln.arange %n, %n, %n dtype "i64" : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %1 = kiln.arange %n, %n, %n dtype "f32" : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xf32>
  %2 = kiln.full %s value 0.000000e+00 dtype "f32" : (tensor<2xi64>) -> tensor<2x4xf32>
  %3 = kiln.full %s value -3.000000e+38 dtype "f16" : (tensor<2xi64>) -> tensor<?x?xf16>
  %4 = kiln.full_like %x value 1.000000e+00 dtype "" : (tensor<2x8xf32>) -> tensor<2x8xf32>
  %5 = kiln.full_like %x value 0.000000e+00 dtype "i1" : (tensor<2x8xf32>) -> tensor<2x8xi1>
  %6 = kiln.dim_size %x dim 1 : (tensor<2x8xf32>) -> tensor<i64>
  %7 = kiln.shape_of %x : (tensor<2x8xf32>) -> tensor<2xi64>
  %8 = kiln.copy %x : (tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// Dynamic dims: sizes come from run-time values.
// CHECK-LABEL: func.func @dynamic(
// CHECK-SAME:    %[[ARG0:[^:]+]]: tensor<?x?xf32>
// CHECK-SAME:    %[[ARG1:[^:]+]]: tensor<16x8xf32>
// CHECK-SAME:    %[[ARG2:[^:]+]]: tensor<1x?xi64>
// CHECK-SAME:    %[[ARG3:[^:]+]]: tensor<?x8xf32>
// CHECK-SAME:    %[[ARG4:[^:]+]]: tensor<?xi64>
// CHECK-SAME:    %[[ARG5:[^:]+]]: tensor<i64>
// CHECK-NEXT:    %[[V0:[^ :]+]] = kiln.unary "gelu" %[[ARG0]] : (tensor<?x?xf32>) -> tensor<?x?xf32>
// CHECK-NEXT:    %[[V1:[^ :]+]] = kiln.binary "sub" %[[ARG0]], %[[ARG0]] : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf32>
// CHECK-NEXT:    %[[V2:[^ :]+]] = kiln.linear %[[ARG0]], %[[ARG1]] : (tensor<?x?xf32>, tensor<16x8xf32>) -> tensor<?x16xf32>
// CHECK-NEXT:    %[[V3:[^ :]+]] = kiln.embedding %[[ARG3]], %[[ARG2]] : (tensor<?x8xf32>, tensor<1x?xi64>) -> tensor<1x?x8xf32>
// CHECK-NEXT:    %[[V4:[^ :]+]] = kiln.reshape %[[ARG0]], %[[ARG4]] : (tensor<?x?xf32>, tensor<?xi64>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V5:[^ :]+]] = kiln.dim_size %[[ARG0]] dim 0 : (tensor<?x?xf32>) -> tensor<i64>
// CHECK-NEXT:    %[[V6:[^ :]+]] = kiln.shape_of %[[ARG0]] : (tensor<?x?xf32>) -> tensor<2xi64>
// CHECK-NEXT:    %[[V7:[^ :]+]] = kiln.binary "mul" %[[V5]], %[[ARG5]] : (tensor<i64>, tensor<i64>) -> tensor<i64>
// CHECK-NEXT:    %[[V8:[^ :]+]] = kiln.stack %[[V5]], %[[V7]] dim 0 : (tensor<i64>, tensor<i64>) -> tensor<2xi64>
// CHECK-NEXT:    %[[V9:[^ :]+]] = kiln.full %[[V8]] value 1.000000e+00 dtype "f32" : (tensor<2xi64>) -> tensor<?x?xf32>
// CHECK-NEXT:    %[[V10:[^ :]+]] = kiln.reduce "sum" %[[ARG0]] dims [0] keepdim false : (tensor<?x?xf32>) -> tensor<?xf32>
// CHECK-NEXT:    %[[V11:[^ :]+]]:2 = kiln.split %[[ARG0]] dim 1 chunks 2 : (tensor<?x?xf32>) -> (tensor<?x?xf32>, tensor<?x?xf32>)
// CHECK-NEXT:    %[[V12:[^ :]+]] = kiln.concat %[[ARG0]], %[[ARG0]] dim 0 : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf32>
// CHECK-NEXT:    %[[V13:[^ :]+]] = kiln.matmul %[[ARG0]], %[[ARG0]] : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf32>
// CHECK-NEXT:    return %[[V2]] : tensor<?x16xf32>
func.func @dynamic(%x: tensor<?x?xf32>, %w: tensor<16x8xf32>, %ids: tensor<1x?xi64>, %table: tensor<?x8xf32>, %s: tensor<?xi64>, %n: tensor<i64>) -> tensor<?x16xf32> {
  %0 = kiln.unary "gelu" %x : (tensor<?x?xf32>) -> tensor<?x?xf32>
  %1 = kiln.binary "sub" %x, %x : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf32>
  %2 = kiln.linear %x, %w : (tensor<?x?xf32>, tensor<16x8xf32>) -> tensor<?x16xf32>
  %3 = kiln.embedding %table, %ids : (tensor<?x8xf32>, tensor<1x?xi64>) -> tensor<1x?x8xf32>
  %4 = kiln.reshape %x, %s : (tensor<?x?xf32>, tensor<?xi64>) -> tensor<*xf32>
  %5 = kiln.dim_size %x dim 0 : (tensor<?x?xf32>) -> tensor<i64>
  %6 = kiln.shape_of %x : (tensor<?x?xf32>) -> tensor<2xi64>
  %7 = kiln.binary "mul" %5, %n : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %8 = kiln.stack %5, %7 dim 0 : (tensor<i64>, tensor<i64>) -> tensor<2xi64>
  %9 = kiln.full %8 value 1.000000e+00 dtype "f32" : (tensor<2xi64>) -> tensor<?x?xf32>
  %10 = kiln.reduce "sum" %x dims [0] keepdim false : (tensor<?x?xf32>) -> tensor<?xf32>
  %11:2 = kiln.split %x dim 1 chunks 2 : (tensor<?x?xf32>) -> (tensor<?x?xf32>, tensor<?x?xf32>)
  %12 = kiln.concat %x, %x dim 0 : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf32>
  %13 = kiln.matmul %x, %x : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf32>
  return %2 : tensor<?x16xf32>
}

// Unranked: a bare traced archive has no input shapes.
// CHECK-LABEL: func.func @unranked(
// CHECK-SAME:    %[[ARG0:[^:]+]]: tensor<*xf32>
// CHECK-SAME:    %[[ARG1:[^:]+]]: tensor<*xi64>
// CHECK-SAME:    %[[ARG2:[^:]+]]: tensor<*xf32>
// CHECK-SAME:    %[[ARG3:[^:]+]]: tensor<*xi64>
// CHECK-NEXT:    %[[V0:[^ :]+]] = kiln.embedding %[[ARG2]], %[[ARG1]] : (tensor<*xf32>, tensor<*xi64>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V1:[^ :]+]] = kiln.rms_norm %[[V0]] weight %[[ARG2]] eps 9.9999999999999995E-7 : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V2:[^ :]+]] = kiln.linear %[[V1]], %[[ARG2]] : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V3:[^ :]+]] = kiln.binary "add" %[[V2]], %[[ARG0]] : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V4:[^ :]+]] = kiln.binary "mul" %[[ARG3]], %[[ARG0]] : (tensor<*xi64>, tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V5:[^ :]+]] = kiln.softmax %[[V3]] dim -1 log false : (tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V6:[^ :]+]] = kiln.transpose %[[V5]] dim0 -2 dim1 -1 : (tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V7:[^ :]+]] = kiln.matmul %[[V5]], %[[V6]] : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V8:[^ :]+]] = kiln.dim_size %[[ARG0]] dim -1 : (tensor<*xf32>) -> tensor<i64>
// CHECK-NEXT:    %[[V9:[^ :]+]] = kiln.shape_of %[[ARG0]] : (tensor<*xf32>) -> tensor<?xi64>
// CHECK-NEXT:    %[[V10:[^ :]+]] = kiln.slice %[[ARG0]], %[[V8]], %[[V8]] dim 1 step 1 : (tensor<*xf32>, tensor<i64>, tensor<i64>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V11:[^ :]+]]:3 = kiln.split %[[ARG0]] dim 0 sizes [1, 1, 2] : (tensor<*xf32>) -> (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>)
// CHECK-NEXT:    %[[V12:[^ :]+]] = kiln.permute %[[ARG0]] perm [1, 0] : (tensor<*xf32>) -> tensor<2x2xf32>
// CHECK-NEXT:    %[[V13:[^ :]+]] = kiln.compare "eq" %[[ARG3]], %[[ARG3]] : (tensor<*xi64>, tensor<*xi64>) -> tensor<*xi1>
// CHECK-NEXT:    %[[V14:[^ :]+]] = kiln.where %[[V13]], %[[ARG0]], %[[ARG0]] : (tensor<*xi1>, tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V15:[^ :]+]] = kiln.full_like %[[ARG0]] value 0.000000e+00 dtype "" : (tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V16:[^ :]+]] = kiln.copy %[[V15]] : (tensor<*xf32>) -> tensor<*xf32>
// CHECK-NEXT:    %[[V17:[^ :]+]] = kiln.cast_like %[[V12]], %[[ARG0]] : (tensor<2x2xf32>, tensor<*xf32>) -> tensor<2x2xf32>
// CHECK-NEXT:    return %[[V7]] : tensor<*xf32>
func.func @unranked(%x: tensor<*xf32>, %ids: tensor<*xi64>, %w: tensor<*xf32>, %n: tensor<*xi64>) -> tensor<*xf32> {
  %0 = kiln.embedding %w, %ids : (tensor<*xf32>, tensor<*xi64>) -> tensor<*xf32>
  %1 = kiln.rms_norm %0 weight %w eps 1.000000e-06 : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %2 = kiln.linear %1, %w : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %3 = kiln.binary "add" %2, %x : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %4 = kiln.binary "mul" %n, %x : (tensor<*xi64>, tensor<*xf32>) -> tensor<*xf32>
  %5 = kiln.softmax %3 dim -1 log false : (tensor<*xf32>) -> tensor<*xf32>
  %6 = kiln.transpose %5 dim0 -2 dim1 -1 : (tensor<*xf32>) -> tensor<*xf32>
  %7 = kiln.matmul %5, %6 : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %8 = kiln.dim_size %x dim -1 : (tensor<*xf32>) -> tensor<i64>
  %9 = kiln.shape_of %x : (tensor<*xf32>) -> tensor<?xi64>
  %10 = kiln.slice %x, %8, %8 dim 1 step 1 : (tensor<*xf32>, tensor<i64>, tensor<i64>) -> tensor<*xf32>
  %11:3 = kiln.split %x dim 0 sizes [1, 1, 2] : (tensor<*xf32>) -> (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>)
  %12 = kiln.permute %x perm [1, 0] : (tensor<*xf32>) -> tensor<2x2xf32>
  %13 = kiln.compare "eq" %n, %n : (tensor<*xi64>, tensor<*xi64>) -> tensor<*xi1>
  %14 = kiln.where %13, %x, %x : (tensor<*xi1>, tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %15 = kiln.full_like %x value 0.000000e+00 dtype "" : (tensor<*xf32>) -> tensor<*xf32>
  %16 = kiln.copy %15 : (tensor<*xf32>) -> tensor<*xf32>
  %17 = kiln.cast_like %12, %x : (tensor<2x2xf32>, tensor<*xf32>) -> tensor<2x2xf32>
  return %7 : tensor<*xf32>
}

// The resource blob of dense_resource<weight0> survives the round trip.
// CHECK: weight0: "0x040000000000803F000000400000404000008040"
{-#
  dialect_resources: {
    builtin: {
      weight0: "0x040000000000803F000000400000404000008040"
    }
  }
#-}
