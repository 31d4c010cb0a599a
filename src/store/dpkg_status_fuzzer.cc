// Fuzzes the reading of dpkg-query's answers (status, version, conffiles of a package).
#include <string_view>

#include "store/dpkg_database.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)qp::store::ParseDpkgQueryStanzas(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
