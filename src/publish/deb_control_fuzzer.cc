// Fuzzes the reading of a Debian package's control data by the publisher (build
// --from-deb): dpkg-deb --show's fields, then a NUL, then the conffiles file.
#include <cstdint>
#include <string_view>

#include "publish/deb_package.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t nul = in.find('\0');
  std::string_view fields = in.substr(0, nul);
  std::string_view conffiles = nul == std::string_view::npos ? "" : in.substr(nul + 1);
  (void)qp::publish::ParseDebControl(fields, conffiles);
  return 0;
}
