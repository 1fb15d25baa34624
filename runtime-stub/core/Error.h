// Errors as values: the runtime never throws. Every fallible function returns
// an `Error` (success or a code + message) or a `Result<T>` (a value or an Error).
#ifndef KILN_RUNTIME_CORE_ERROR_H
#define KILN_RUNTIME_CORE_ERROR_H

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace kiln {
namespace rt {

enum class ErrorCode {
  Ok = 0,
  InvalidArgument, // bad call: wrong input count, shape, dtype, option
  InvalidProgram,  // the program file is malformed or inconsistent
  Unsupported,     // valid request the runtime cannot do (dtype, op, format)
  OutOfRange,      // an index read at run time is out of bounds
  OutOfMemory,     // an allocation failed
  Io,              // file system failure
};

const char *errorCodeName(ErrorCode code);

/// Success (default constructed) or a failure with a code and a message.
class [[nodiscard]] Error {
public:
  Error() = default;
  static Error success() { return Error(); }
  static Error make(ErrorCode code, std::string message) {
    assert(code != ErrorCode::Ok);
    Error e;
    e.code_ = code;
    e.message_ = std::move(message);
    return e;
  }

  bool ok() const { return code_ == ErrorCode::Ok; }
  bool failed() const { return code_ != ErrorCode::Ok; }
  ErrorCode code() const { return code_; }
  const std::string &message() const { return message_; }

  /// The same error with "prefix: " in front of the message.
  Error withContext(const std::string &prefix) const {
    if (ok())
      return *this;
    return make(code_, prefix + ": " + message_);
  }

private:
  ErrorCode code_ = ErrorCode::Ok;
  std::string message_;
};

inline Error invalidArgument(std::string m) { return Error::make(ErrorCode::InvalidArgument, std::move(m)); }
inline Error invalidProgram(std::string m) { return Error::make(ErrorCode::InvalidProgram, std::move(m)); }
inline Error unsupported(std::string m) { return Error::make(ErrorCode::Unsupported, std::move(m)); }
inline Error outOfRange(std::string m) { return Error::make(ErrorCode::OutOfRange, std::move(m)); }
inline Error outOfMemory(std::string m) { return Error::make(ErrorCode::OutOfMemory, std::move(m)); }
inline Error ioError(std::string m) { return Error::make(ErrorCode::Io, std::move(m)); }

/// A value of type T or an Error.
template <typename T> class [[nodiscard]] Result {
public:
  Result(T value) : value_(std::move(value)) {}
  Result(Error error) : error_(std::move(error)) {
    assert(error_.failed() && "Result constructed from a success Error");
  }

  bool ok() const { return value_.has_value(); }
  const Error &error() const { return error_; }
  T &value() { assert(ok()); return *value_; }
  const T &value() const { assert(ok()); return *value_; }
  T &operator*() { return value(); }
  T *operator->() { return &value(); }
  /// Moves the value out.
  T take() { assert(ok()); return std::move(*value_); }

private:
  std::optional<T> value_;
  Error error_;
};

} // namespace rt
} // namespace kiln

/// Returns early from the enclosing function if `expr` (an Error) failed.
#define KILN_TRY(expr)                                                         \
  do {                                                                         \
    ::kiln::rt::Error kiln_try_error_ = (expr);                                \
    if (kiln_try_error_.failed())                                              \
      return kiln_try_error_;                                                  \
  } while (0)

#endif // KILN_RUNTIME_CORE_ERROR_H
