// A look at timestamp.json without verifying it: its version and expiry, for routing and
// scheduling only (the watch endpoint, the server's re-signing timer). Nothing trusts what
// this returns; devices verify the timestamp through the TUF client.
#pragma once

#include <cstdint>
#include <span>

#include "core/clock.h"
#include "core/result.h"

namespace qp::contract {

// The largest timestamp.json read (it lists one file: a few hundred bytes).
inline constexpr std::uint64_t kMaxTimestampBytes = 16384;

struct TimestampPeek {
  std::uint64_t version = 0;
  WallTime expires;
};

// kCorrupt when `bytes` is not JSON with signed.version (an unsigned integer) and
// signed.expires (a TUF date).
Result<TimestampPeek> PeekTimestamp(std::span<const std::uint8_t> bytes);

}  // namespace qp::contract
