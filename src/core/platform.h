// Platform names: what an improvement is built for and a device runs ("linux-x86_64"),
// shared by the publisher (a .deb's Architecture field) and the device (dpkg's).
#pragma once

#include <string>
#include <string_view>

namespace qp {

// The platform quietpatch names for a Debian architecture ("amd64" -> "linux-x86_64");
// "" for one it does not know (and for "all", which names no machine).
std::string PlatformOfDebianArchitecture(std::string_view architecture);

}  // namespace qp
