// Fuzzes offline bundle parsing (untrusted bytes handed to a device).
#include "tuf/bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)qp::tuf::ParseBundle(std::span<const std::uint8_t>(data, size));
  return 0;
}
