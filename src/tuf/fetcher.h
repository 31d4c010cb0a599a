// How the TUF client reaches a repository: an interface, so that tests serve metadata from
// memory and the agent plugs in its HTTP client. The tuf part never touches the network itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace qp::tuf {

class Fetcher {
 public:
  virtual ~Fetcher() = default;
  // The whole body at `url`. Errors: kNotFound for HTTP 403 and 404 (the end of a root
  // chain); kTooLarge as soon as more than `max_length` bytes arrive (endless data);
  // kIo for anything else (connection, timeout, other statuses).
  virtual Result<std::vector<std::uint8_t>> Fetch(const std::string& url,
                                                  std::uint64_t max_length) = 0;
};

// Percent-encodes everything but A-Z a-z 0-9 _ . - ~, so that a role name or target path
// is one safe URL path segment and one safe file name ("a/b" -> "a%2Fb").
std::string PercentEncode(std::string_view text);

}  // namespace qp::tuf
