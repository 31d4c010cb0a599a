#include "core/result.h"

#include <cerrno>
#include <cstring>

namespace qp {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kAlreadyExists:
      return "already exists";
    case ErrorCode::kIo:
      return "i/o error";
    case ErrorCode::kNoSpace:
      return "no space";
    case ErrorCode::kCorrupt:
      return "corrupt";
    case ErrorCode::kTooLarge:
      return "too large";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kVerificationFailed:
      return "verification failed";
    case ErrorCode::kFailedPrecondition:
      return "failed precondition";
    case ErrorCode::kCrashed:
      return "crashed";
    case ErrorCode::kInternal:
      return "internal error";
  }
  return "unknown error";
}

std::string Error::ToString() const { return std::string(ErrorCodeName(code_)) + ": " + message_; }

Error ErrnoError(int err, std::string_view what) {
  ErrorCode code = ErrorCode::kIo;
  if (err == ENOSPC || err == EDQUOT) code = ErrorCode::kNoSpace;
  if (err == ENOENT) code = ErrorCode::kNotFound;
  if (err == EEXIST) code = ErrorCode::kAlreadyExists;
  return Error(code, std::string(what) + ": " + std::strerror(err));
}

}  // namespace qp
