//===- KilnTypes.td - kiln dialect types ---------------------*- tablegen -*-===//
//
// Types of the kiln dialect: quantized weights (`!kiln.qweight`). Quantized
// weights are a type, not a convention, so that only the ops that read them
// (`kiln.linear`, `kiln.embedding`) accept them and every other use is a
// verifier error.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_KILNTYPES_TD
#define KILN_DIALECT_KILNTYPES_TD

include "kiln/Dialect/KilnDialect.td"
include "mlir/IR/AttrTypeBase.td"

def Kiln_QWeightType : TypeDef<Kiln_Dialect, "QWeight"> {
  let mnemonic = "qweight";
  let summary = "symmetric weight-only quantized 2-d weight [out, in]";
  let description = [{
    A 2-d weight `[out, in]` (a `linear` weight or an `embedding` table
    `[num, dim]`) stored as signed integers with f16 scales; it reads as f32
    (`w[r][c] = q[r][c] * scale[r][c / group]`).

    * `!kiln.qweight<i8, [out, in]>`: int8, one scale per row (output
      channel): `group` is `in`, printed only when it differs.
    * `!kiln.qweight<i4, [out, in], group = G>`: int4, one scale per `G`
      consecutive in-features of a row; `G` is 32, 64 or 128 and divides `in`.

    ```mlir
    !kiln.qweight<i8, [1536, 576]>
    !kiln.qweight<i4, [1536, 576], group = 32>
    ```
  }];
  let parameters = (ins "unsigned":$bits,
                        ArrayRefParameter<"int64_t">:$shape,
                        "int64_t":$groupSize);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getOutFeatures() const { return getShape()[0]; }
    int64_t getInFeatures() const { return getShape()[1]; }
    /// Number of scales per row (in / group).
    int64_t getGroupsPerRow() const { return getShape()[1] / getGroupSize(); }
    /// Bytes of the packed integer data (two int4 values per byte).
    int64_t getPackedBytes() const {
      return getShape()[0] * getShape()[1] * getBits() / 8;
    }
    /// The tensor type holding the packed data: [out, in] i8, or [out, in/2]
    /// i8 for int4 (element 2k in the low nibble, 2k+1 in the high nibble).
    ::mlir::RankedTensorType getDataTensorType() const;
    /// The tensor type holding the scales: [out, in/group] f16.
    ::mlir::RankedTensorType getScalesTensorType() const;
  }];
}

#endif // KILN_DIALECT_KILNTYPES_TD
