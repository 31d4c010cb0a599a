// Fuzzes device report validation (POST /v1/reports bodies).
#include "server/report_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)qp::server::ParseReport(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
