#include "runtime-stub/kernels/Attributes.h"

namespace kiln {
namespace rt {
namespace {

const char *kindName(fb::AttrKind k) {
  switch (k) {
  case fb::AttrKind::Int: return "int";
  case fb::AttrKind::Float: return "float";
  case fb::AttrKind::Ints: return "ints";
  case fb::AttrKind::Floats: return "floats";
  case fb::AttrKind::String: return "string";
  case fb::AttrKind::Bool: return "bool";
  }
  return "unknown";
}

Error missing(const char *name) {
  return invalidProgram(std::string("missing attribute '") + name + "'");
}
Error wrongKind(const char *name, fb::AttrKind got, const char *want) {
  return invalidProgram(std::string("attribute '") + name + "' is " + kindName(got) +
                        ", expected " + want);
}

} // namespace

const fb::Attribute *AttrSet::find(const char *name) const {
  if (!attrs_)
    return nullptr;
  for (uint32_t i = 0; i < attrs_->size(); ++i) {
    const fb::Attribute *a = attrs_->Get(i);
    if (a->name()->str() == name)
      return a;
  }
  return nullptr;
}

Error AttrSet::getInt(const char *name, bool required, int64_t *out, bool *present) const {
  const fb::Attribute *a = find(name);
  if (present)
    *present = a != nullptr;
  if (!a)
    return required ? missing(name) : Error::success();
  if (a->kind() == fb::AttrKind::Int || a->kind() == fb::AttrKind::Bool) {
    *out = a->i();
    return Error::success();
  }
  return wrongKind(name, a->kind(), "int");
}

Error AttrSet::getFloat(const char *name, bool required, double *out, bool *present) const {
  const fb::Attribute *a = find(name);
  if (present)
    *present = a != nullptr;
  if (!a)
    return required ? missing(name) : Error::success();
  if (a->kind() == fb::AttrKind::Float) {
    *out = a->f();
    return Error::success();
  }
  if (a->kind() == fb::AttrKind::Int || a->kind() == fb::AttrKind::Bool) {
    *out = (double)a->i();
    return Error::success();
  }
  return wrongKind(name, a->kind(), "float");
}

Error AttrSet::getBool(const char *name, bool required, bool *out) const {
  const fb::Attribute *a = find(name);
  if (!a)
    return required ? missing(name) : Error::success();
  if (a->kind() == fb::AttrKind::Bool || a->kind() == fb::AttrKind::Int) {
    *out = a->i() != 0;
    return Error::success();
  }
  return wrongKind(name, a->kind(), "bool");
}

Error AttrSet::getInts(const char *name, bool required, std::vector<int64_t> *out,
                       bool *present) const {
  const fb::Attribute *a = find(name);
  if (present)
    *present = a != nullptr;
  if (!a)
    return required ? missing(name) : Error::success();
  if (a->kind() == fb::AttrKind::Ints) {
    out->clear();
    if (a->ints())
      out->assign(a->ints()->begin(), a->ints()->end());
    return Error::success();
  }
  return wrongKind(name, a->kind(), "ints");
}

Error AttrSet::getFloats(const char *name, bool required, std::vector<double> *out,
                         bool *present) const {
  const fb::Attribute *a = find(name);
  if (present)
    *present = a != nullptr;
  if (!a)
    return required ? missing(name) : Error::success();
  if (a->kind() == fb::AttrKind::Floats) {
    out->clear();
    if (a->floats())
      out->assign(a->floats()->begin(), a->floats()->end());
    return Error::success();
  }
  return wrongKind(name, a->kind(), "floats");
}

Error AttrSet::getString(const char *name, bool required, std::string *out,
                         bool *present) const {
  const fb::Attribute *a = find(name);
  if (present)
    *present = a != nullptr;
  if (!a)
    return required ? missing(name) : Error::success();
  if (a->kind() == fb::AttrKind::String) {
    *out = a->s() ? a->s()->str() : std::string();
    return Error::success();
  }
  return wrongKind(name, a->kind(), "string");
}

Error AttrSet::getDType(const char *name, bool required, DType *out, bool *present) const {
  std::string s;
  bool has = false;
  KILN_TRY(getString(name, required, &s, &has));
  *present = false;
  if (!has || s.empty())
    return required ? missing(name) : Error::success();
  if (!parseDType(s, out))
    return invalidProgram(std::string("attribute '") + name + "': unknown dtype '" + s + "'");
  *present = true;
  return Error::success();
}

} // namespace rt
} // namespace kiln
