#include "delta/function_pairs.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "delta/byte_io.h"

namespace qp::delta {
namespace {

constexpr std::uint32_t kShtSymtab = 2, kShtDynsym = 11, kShtProgbits = 1;
constexpr std::uint64_t kShfExecinstr = 0x4;
constexpr std::uint8_t kSttFunc = 2;
constexpr std::uint8_t kElf64Le[6] = {0x7f, 'E', 'L', 'F', 2, 1};  // magic, ELFCLASS64, LSB

struct Section {
  std::uint32_t type = 0, link = 0;
  std::uint64_t flags = 0, addr = 0, offset = 0, size = 0;
};

struct Function {
  std::int64_t offset, size;
  int count;
};

// Name -> where the function lies in the file, for the file's STT_FUNC symbols of the
// symbol table of `type`; empty for anything that is not a well-formed ELF64 LE file.
std::unordered_map<std::string_view, Function> Functions(std::span<const std::uint8_t> f,
                                                         std::uint32_t type) {
  std::unordered_map<std::string_view, Function> out;
  if (f.size() < 64 || std::memcmp(f.data(), kElf64Le, sizeof kElf64Le) != 0) return out;
  auto load = [&](std::uint64_t at, int width) {
    return LoadLe(f.data() + static_cast<std::size_t>(at), width);
  };
  const std::uint64_t shoff = load(0x28, 8), shentsize = load(0x3a, 2), shnum = load(0x3c, 2);
  if (shentsize != 64 || shoff > f.size() || shnum > (f.size() - shoff) / 64) return out;
  std::vector<Section> sections(static_cast<std::size_t>(shnum));
  for (std::uint64_t i = 0; i < shnum; ++i) {
    const std::uint64_t h = shoff + i * 64;
    Section& s = sections[static_cast<std::size_t>(i)];
    s.type = static_cast<std::uint32_t>(load(h + 4, 4));
    s.flags = load(h + 8, 8);
    s.addr = load(h + 16, 8);
    s.offset = load(h + 24, 8);
    s.size = load(h + 32, 8);
    s.link = static_cast<std::uint32_t>(load(h + 40, 4));
  }
  auto inside = [&](const Section& s) {
    return s.offset <= f.size() && s.size <= f.size() - s.offset;
  };
  for (const Section& table : sections) {
    if (table.type != type || !inside(table) || table.link >= sections.size()) continue;
    const Section& names = sections[table.link];
    if (!inside(names)) continue;
    const std::string_view strtab(reinterpret_cast<const char*>(f.data() + names.offset),
                                  static_cast<std::size_t>(names.size));
    for (std::uint64_t at = table.offset; at + 24 <= table.offset + table.size; at += 24) {
      const std::uint64_t name = load(at, 4), shndx = load(at + 6, 2);
      const std::uint64_t value = load(at + 8, 8), size = load(at + 16, 8);
      if ((f[static_cast<std::size_t>(at) + 4] & 0xf) != kSttFunc || size == 0 || shndx == 0 ||
          shndx >= sections.size() || name >= strtab.size()) {
        continue;
      }
      const Section& code = sections[static_cast<std::size_t>(shndx)];
      if (code.type != kShtProgbits || (code.flags & kShfExecinstr) == 0 || !inside(code) ||
          value < code.addr || value - code.addr > code.size ||
          size > code.size - (value - code.addr)) {
        continue;
      }
      const std::size_t end = strtab.find('\0', static_cast<std::size_t>(name));
      if (end == std::string_view::npos || end == name) continue;
      const std::string_view key = strtab.substr(static_cast<std::size_t>(name), end - name);
      auto it = out.try_emplace(
                       key, Function{static_cast<std::int64_t>(code.offset + (value - code.addr)),
                                     static_cast<std::int64_t>(size), 0})
                    .first;
      ++it->second.count;
    }
  }
  return out;
}

}  // namespace

std::vector<FunctionPair> PairFunctionsBySymbol(std::span<const std::uint8_t> old_file,
                                                std::span<const std::uint8_t> new_file) {
  // .symtab where both files keep one (it names every function), else .dynsym.
  auto old_functions = Functions(old_file, kShtSymtab);
  auto new_functions = Functions(new_file, kShtSymtab);
  if (old_functions.empty() || new_functions.empty()) {
    old_functions = Functions(old_file, kShtDynsym);
    new_functions = Functions(new_file, kShtDynsym);
  }
  std::vector<FunctionPair> pairs;
  for (const auto& [name, fn] : new_functions) {
    auto it = old_functions.find(name);
    if (fn.count != 1 || it == old_functions.end() || it->second.count != 1) continue;
    pairs.push_back(FunctionPair{fn.offset, fn.offset + fn.size, it->second.offset - fn.offset});
  }
  std::sort(pairs.begin(), pairs.end(), [](const FunctionPair& a, const FunctionPair& b) {
    return a.new_begin != b.new_begin ? a.new_begin < b.new_begin : a.new_end > b.new_end;
  });
  // Aliases and nested symbols: the first of overlapping functions is kept.
  std::vector<FunctionPair> disjoint;
  for (const FunctionPair& p : pairs) {
    if (disjoint.empty() || p.new_begin >= disjoint.back().new_end) disjoint.push_back(p);
  }
  return disjoint;
}

}  // namespace qp::delta
