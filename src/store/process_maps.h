// "Installed" is not "protected": a running process keeps the code it mapped before a file
// was replaced. This finds processes whose /proc/PID/maps show a component file whose
// inode is no longer the live one (replaced or deleted).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qp::store {

struct MappedFile {
  std::string path;  // without the " (deleted)" suffix
  bool deleted = false;
  unsigned dev_major = 0, dev_minor = 0;
  std::uint64_t inode = 0;
};

// Parses the text of /proc/PID/maps; lines without a file are skipped, malformed lines too.
std::vector<MappedFile> ParseMaps(std::string_view text);

struct ProcessRef {
  int pid = 0;
  std::string name;  // /proc/PID/comm
};

// Processes under `proc_root` mapping a file that one of `aliases` (path prefix as seen in
// maps -> the live path it stands for; a prefix ending in '/' matches a directory, any
// other an exact file) resolves to a live path whose device/inode differ or which is gone.
// Processes that cannot be read (gone, or not ours) are skipped.
std::vector<ProcessRef> FindStaleMappings(
    const std::string& proc_root, const std::vector<std::pair<std::string, std::string>>& aliases);

}  // namespace qp::store
