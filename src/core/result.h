// The error type used across quietpatch: a code a caller can branch on, and a message that
// says what failed and where ("patch record 12 (usr/lib/libssl.so.3): source hash
// mismatch"). Results are values; no exceptions cross a part boundary.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace qp {

enum class ErrorCode {
  kInvalidArgument,     // the caller asked for something malformed
  kNotFound,            // a file, key, or record does not exist
  kAlreadyExists,       // exclusive creation found something in the way
  kIo,                  // the operating system reported an I/O error (EIO, EACCES, ...)
  kNoSpace,             // ENOSPC / EDQUOT, or a free-space check failed
  kCorrupt,             // input bytes are malformed, truncated or fail a checksum
  kTooLarge,            // input exceeds a configured limit
  kUnsupported,         // unknown format version, algorithm or feature
  kVerificationFailed,  // a hash or signature did not match
  kFailedPrecondition,  // refused in the current state (a setting locked by policy, ...)
  kCrashed,             // the fault-injecting env simulated a crash: execution stops here
  kInternal,            // a bug: an invariant of our own was broken
};

std::string_view ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message", to add where the error passed.
  Error WithContext(std::string_view context) const {
    return Error(code_, std::string(context) + ": " + message_);
  }

  // "no space: write /x/y: No space left on device"
  std::string ToString() const;

 private:
  ErrorCode code_;
  std::string message_;
};

// Result<T> holds a T or an Error. Result<void> (alias Status) holds nothing or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_{ErrorCode::kInternal, ""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status OkStatus() { return Status(); }

// Builds an Error from errno: ENOSPC/EDQUOT -> kNoSpace, ENOENT -> kNotFound,
// EEXIST -> kAlreadyExists, anything else -> kIo. The message is "what: strerror".
Error ErrnoError(int err, std::string_view what);

}  // namespace qp

// Returns early from the enclosing function with the error of `expr` (a Result or Status).
#define QP_RETURN_IF_ERROR(expr)                     \
  do {                                               \
    auto qp_status_ = (expr);                        \
    if (!qp_status_.ok()) return qp_status_.error(); \
  } while (0)

#define QP_CONCAT_INNER_(a, b) a##b
#define QP_CONCAT_(a, b) QP_CONCAT_INNER_(a, b)
// QP_ASSIGN_OR_RETURN(auto x, Compute()); declares x from the value or returns the error.
#define QP_ASSIGN_OR_RETURN(lhs, expr) \
  QP_ASSIGN_OR_RETURN_IMPL_(QP_CONCAT_(qp_result_, __LINE__), lhs, expr)
#define QP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.error();              \
  lhs = std::move(tmp).value()
