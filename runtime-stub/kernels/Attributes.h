// Typed access to an instruction's generic attributes (name, kind, payload),
// used only at load time when kernels pre-parse them into OpAttrs.
#ifndef KILN_RUNTIME_KERNELS_ATTRIBUTES_H
#define KILN_RUNTIME_KERNELS_ATTRIBUTES_H

#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/Error.h"
#include "kiln/program_generated.h"

#include <string>
#include <vector>

namespace kiln {
namespace rt {

class AttrSet {
public:
  using Vec = flatbuffers::Vector<flatbuffers::Offset<fb::Attribute>>;
  explicit AttrSet(const Vec *attrs) : attrs_(attrs) {}

  const fb::Attribute *find(const char *name) const;
  bool has(const char *name) const { return find(name) != nullptr; }

  /// Readers: fill *out when present (kind checked; Int accepted for Float and
  /// Bool, Bool for Int); a missing attribute is an error only if `required`.
  Error getInt(const char *name, bool required, int64_t *out, bool *present = nullptr) const;
  Error getFloat(const char *name, bool required, double *out, bool *present = nullptr) const;
  Error getBool(const char *name, bool required, bool *out) const;
  Error getInts(const char *name, bool required, std::vector<int64_t> *out,
                bool *present = nullptr) const;
  Error getFloats(const char *name, bool required, std::vector<double> *out,
                  bool *present = nullptr) const;
  Error getString(const char *name, bool required, std::string *out,
                  bool *present = nullptr) const;
  /// A dtype string attribute; absent or empty leaves *present false.
  Error getDType(const char *name, bool required, DType *out, bool *present) const;

private:
  const Vec *attrs_;
};

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_ATTRIBUTES_H
