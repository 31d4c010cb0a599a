#include "store/process_maps.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fstream>
#include <sstream>

namespace qp::store {
namespace {

std::string ReadSmallFile(const std::string& path, std::size_t limit) {
  std::ifstream in(path, std::ios::binary);
  std::string out;
  char buf[8192];
  while (in && out.size() < limit) {
    in.read(buf, sizeof(buf));
    out.append(buf, static_cast<std::size_t>(in.gcount()));
  }
  return out;
}

}  // namespace

std::vector<MappedFile> ParseMaps(std::string_view text) {
  std::vector<MappedFile> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string line(text.substr(pos, end - pos));
    pos = end + 1;
    // address perms offset dev inode [path]
    std::istringstream fields(line);
    std::string address, perms, offset, dev;
    std::uint64_t inode = 0;
    if (!(fields >> address >> perms >> offset >> dev >> inode)) continue;
    std::string path;
    std::getline(fields, path);
    std::size_t start = path.find_first_not_of(' ');
    if (start == std::string::npos || inode == 0) continue;
    path = path.substr(start);
    if (path.empty() || path[0] != '/') continue;
    MappedFile m;
    static constexpr std::string_view kDeleted = " (deleted)";
    if (path.size() > kDeleted.size() && path.ends_with(kDeleted)) {
      m.deleted = true;
      path.resize(path.size() - kDeleted.size());
    }
    std::size_t colon = dev.find(':');
    if (colon == std::string::npos) continue;
    try {
      m.dev_major = static_cast<unsigned>(std::stoul(dev.substr(0, colon), nullptr, 16));
      m.dev_minor = static_cast<unsigned>(std::stoul(dev.substr(colon + 1), nullptr, 16));
    } catch (...) {
      continue;
    }
    m.path = std::move(path);
    m.inode = inode;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<ProcessRef> FindStaleMappings(
    const std::string& proc_root, const std::vector<std::pair<std::string, std::string>>& aliases) {
  std::vector<ProcessRef> out;
  DIR* dir = ::opendir(proc_root.c_str());
  if (dir == nullptr) return out;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string maps = ReadSmallFile(proc_root + "/" + name + "/maps", 16 << 20);
    bool stale = false;
    for (const auto& m : ParseMaps(maps)) {
      for (const auto& [prefix, live_prefix] : aliases) {
        bool is_dir = !prefix.empty() && prefix.back() == '/';
        bool match = is_dir ? m.path.rfind(prefix, 0) == 0 : m.path == prefix;
        if (!match) continue;
        std::string live = live_prefix + m.path.substr(prefix.size());
        struct stat st {};
        if (::stat(live.c_str(), &st) != 0 || st.st_ino != m.inode ||
            major(st.st_dev) != m.dev_major || minor(st.st_dev) != m.dev_minor) {
          stale = true;
        }
        break;
      }
      if (stale) break;
    }
    if (!stale) continue;
    std::string comm = ReadSmallFile(proc_root + "/" + name + "/comm", 256);
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    out.push_back(ProcessRef{std::stoi(name), comm});
  }
  ::closedir(dir);
  return out;
}

}  // namespace qp::store
