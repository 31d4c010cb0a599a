// Fuzzes component configuration parsing (TOML from the configuration directory).
#include <string_view>

#include "store/component_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)qp::store::ParseComponentConfig(std::string_view(reinterpret_cast<const char*>(data), size),
                                        "fuzz.toml");
  return 0;
}
