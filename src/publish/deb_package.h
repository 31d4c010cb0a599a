// A Debian binary package (.deb) as the publisher's input (`build --from-deb/--to-deb`):
// its control fields name the component, base version and platform, and its data is the
// component's tree as a device's dpkg installed it: the regular files only, conffiles left
// out (the device never touches them), symlinks and directories left to dpkg.
// Read with dpkg-deb, the format's own tool, which refuses paths outside the tree.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "core/env.h"
#include "core/result.h"

namespace qp::publish {

struct DebPackage {
  std::string package;       // "libssl3"
  std::string version;       // "3.0.17-1~deb12u2"
  std::string architecture;  // "amd64"
  std::string tree;          // where its regular files were unpacked
};

// What the publisher reads of a package's control data: dpkg-deb --show's one line
// (Package, Version, Architecture, tab-separated, the format UnpackDeb asks for) and the
// control archive's conffiles file ("" when absent). kInvalidArgument for anything else
// (fuzzed by deb_control_fuzzer).
struct DebControl {
  std::string package, version, architecture;
  std::set<std::string> conffiles;  // absolute paths
};
Result<DebControl> ParseDebControl(std::string_view fields, std::string_view conffiles);

// Unpacks `deb` into `tree` (a new directory). kInvalidArgument when dpkg-deb refuses the
// file or a control field is missing or malformed; kIo when dpkg-deb cannot run.
Result<DebPackage> UnpackDeb(Env* env, const std::string& deb, const std::string& tree);

}  // namespace qp::publish
