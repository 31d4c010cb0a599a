#include "core/result.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace qp {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Error(ErrorCode::kInvalidArgument, "odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  QP_ASSIGN_OR_RETURN(int h, Half(x));
  QP_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  QP_RETURN_IF_ERROR(Half(x));
  return OkStatus();
}

TEST(ResultTest, HoldsValueOrError) {
  Result<int> ok = Half(4);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 2);
  Result<int> bad = Half(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "odd: 3");
}

TEST(ResultTest, MacrosPropagateTheFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).error().message(), "odd: 3");
  EXPECT_TRUE(CheckEven(2).ok());
  EXPECT_FALSE(CheckEven(1).ok());
}

TEST(ResultTest, ContextPrefixesTheMessageAndKeepsTheCode) {
  Error e = Error(ErrorCode::kCorrupt, "source hash mismatch")
                .WithContext("patch record 12 (usr/lib/libssl.so.3)");
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(e.message(), "patch record 12 (usr/lib/libssl.so.3): source hash mismatch");
  EXPECT_EQ(e.ToString(), "corrupt: patch record 12 (usr/lib/libssl.so.3): source hash mismatch");
}

TEST(ResultTest, ErrnoErrorMapsCodes) {
  EXPECT_EQ(ErrnoError(ENOSPC, "write x").code(), ErrorCode::kNoSpace);
  EXPECT_EQ(ErrnoError(EDQUOT, "write x").code(), ErrorCode::kNoSpace);
  EXPECT_EQ(ErrnoError(ENOENT, "open x").code(), ErrorCode::kNotFound);
  EXPECT_EQ(ErrnoError(EEXIST, "create x").code(), ErrorCode::kAlreadyExists);
  Error eio = ErrnoError(EIO, "read x");
  EXPECT_EQ(eio.code(), ErrorCode::kIo);
  EXPECT_EQ(eio.message(), "read x: Input/output error");
}

TEST(ResultTest, EveryCodeHasAName) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
    EXPECT_NE(ErrorCodeName(static_cast<ErrorCode>(c)), "unknown error");
  }
}

}  // namespace
}  // namespace qp
