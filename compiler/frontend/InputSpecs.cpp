//===- InputSpecs.cpp - declared shapes and dtypes of method inputs -------===//

#include "compiler/frontend/InputSpecs.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

namespace kiln {

bool isInputSpecDtype(llvm::StringRef dtype) {
  return llvm::is_contained(
      llvm::ArrayRef<llvm::StringRef>{"f32", "i64", "i1", "i32", "f16", "bf16"}, dtype);
}

std::string formatInputSpec(const TensorInputSpec &spec) {
  std::string text;
  if (spec.shape.empty())
    text = "scalar";
  for (auto [i, dim] : llvm::enumerate(spec.shape))
    text += (i ? "x" : "") + std::to_string(dim);
  return text + ":" + spec.dtype;
}

/// Parses `AxBx...` or `scalar`.
static bool parseDims(llvm::StringRef text, std::vector<int64_t> &dims,
                      std::string &error) {
  dims.clear();
  if (text == "scalar")
    return true;
  if (text.empty()) {
    error = "the dims are empty (write e.g. 1x16, or 'scalar' for a 0-d tensor)";
    return false;
  }
  llvm::SmallVector<llvm::StringRef> parts;
  text.split(parts, 'x', /*MaxSplit=*/-1, /*KeepEmpty=*/true);
  for (llvm::StringRef part : parts) {
    int64_t dim = 0;
    // getAsInteger accepts signs and other radixes; dims are plain decimals.
    if (part.empty() || !llvm::all_of(part, llvm::isDigit) ||
        part.getAsInteger(10, dim)) {
      error = "'" + text.str() +
              "' is not a shape: write dims as non-negative integers joined by "
              "'x' (e.g. 1x16), or 'scalar' for a 0-d tensor";
      return false;
    }
    dims.push_back(dim);
  }
  return true;
}

static bool looksLikeDims(llvm::StringRef text) {
  return text == "scalar" ||
         (!text.empty() && llvm::all_of(text, [](char c) {
           return llvm::isDigit(c) || c == 'x';
         }) && llvm::isDigit(text.front()));
}

static bool checkDtype(llvm::StringRef dtype, std::string &error) {
  if (isInputSpecDtype(dtype))
    return true;
  error = "unknown dtype '" + dtype.str() + "' (one of " + kInputSpecDtypes + ")";
  return false;
}

bool parseInputShapeArgument(llvm::StringRef text, InputShapeArgument &result,
                             std::string &error) {
  result = InputShapeArgument();
  llvm::SmallVector<llvm::StringRef> parts;
  text.split(parts, ':', /*MaxSplit=*/-1, /*KeepEmpty=*/true);
  llvm::StringRef method, dims, dtype = "f32";
  if (parts.size() == 1) {
    dims = parts[0];
  } else if (parts.size() == 2) {
    // DIMS:DTYPE or METHOD:DIMS.
    if (looksLikeDims(parts[0])) {
      dims = parts[0];
      dtype = parts[1];
    } else {
      method = parts[0];
      dims = parts[1];
    }
  } else if (parts.size() == 3) {
    method = parts[0];
    dims = parts[1];
    dtype = parts[2];
  } else {
    error = "expected [METHOD:]DIMS[:DTYPE], e.g. 1x16, forward:1x8:i64";
    return false;
  }
  if (parts.size() > 1 && method.empty() && !looksLikeDims(parts[0])) {
    error = "the method name is empty";
    return false;
  }
  if (!parseDims(dims, result.spec.shape, error) || !checkDtype(dtype, error))
    return false;
  result.method = method.str();
  result.spec.dtype = dtype.str();
  return true;
}

bool parseInputSpecsJson(llvm::StringRef json, MethodInputSpecs &result,
                         std::string &error) {
  result.clear();
  llvm::Expected<llvm::json::Value> parsed = llvm::json::parse(json);
  if (!parsed) {
    error = "invalid JSON: " + llvm::toString(parsed.takeError());
    return false;
  }
  const llvm::json::Object *methods = parsed->getAsObject();
  if (!methods) {
    error = "expected an object mapping method names to lists of inputs";
    return false;
  }
  for (const auto &[name, inputs] : *methods) {
    std::string where = "method '" + name.str() + "'";
    const llvm::json::Array *list = inputs.getAsArray();
    if (!list) {
      error = where + ": expected a list of inputs";
      return false;
    }
    std::vector<TensorInputSpec> specs;
    for (auto [index, input] : llvm::enumerate(*list)) {
      std::string at = where + ", input " + std::to_string(index);
      const llvm::json::Object *object = input.getAsObject();
      const llvm::json::Array *shape = object ? object->getArray("shape") : nullptr;
      if (!shape) {
        error = at + ": expected {\"shape\": [...], \"dtype\": \"...\"}";
        return false;
      }
      TensorInputSpec spec;
      for (const llvm::json::Value &dim : *shape) {
        std::optional<int64_t> value = dim.getAsInteger();
        if (!value || *value < 0) {
          error = at + ": shape entries must be non-negative integers";
          return false;
        }
        spec.shape.push_back(*value);
      }
      if (const llvm::json::Value *dtype = object->get("dtype")) {
        std::optional<llvm::StringRef> text = dtype->getAsString();
        if (!text) {
          error = at + ": dtype must be a string";
          return false;
        }
        std::string dtypeError;
        if (!checkDtype(*text, dtypeError)) {
          error = at + ": " + dtypeError;
          return false;
        }
        spec.dtype = text->str();
      }
      specs.push_back(std::move(spec));
    }
    result[name.str()] = std::move(specs);
  }
  return true;
}

} // namespace kiln
