// Fuzzes the reading of dpkg's status file (the stanza of one package, qualified or not).
#include <string_view>

#include "store/dpkg_database.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)qp::store::FindDpkgStanza(text, "libssl3");
  (void)qp::store::FindDpkgStanza(text, "libssl3:amd64");
  return 0;
}
