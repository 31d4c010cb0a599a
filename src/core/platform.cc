#include "core/platform.h"

namespace qp {

std::string PlatformOfDebianArchitecture(std::string_view architecture) {
  if (architecture == "amd64") return "linux-x86_64";
  if (architecture == "arm64") return "linux-aarch64";
  if (architecture == "armhf") return "linux-armhf";
  if (architecture == "i386") return "linux-i686";
  if (architecture == "riscv64") return "linux-riscv64";
  if (architecture == "ppc64el") return "linux-ppc64le";
  if (architecture == "s390x") return "linux-s390x";
  return "";
}

}  // namespace qp
