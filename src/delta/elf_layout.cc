#include "delta/elf_layout.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "delta/byte_io.h"

namespace qp::delta {
namespace {

// Program headers are looked for in the first 64 KiB only (they follow the ELF header).
constexpr std::size_t kHeadBytes = 64 * 1024;
constexpr std::uint16_t kMaxSegments = 256;
constexpr std::uint16_t kMaxSections = 4096;
constexpr std::uint64_t kMaxNames = 1 << 20;        // section name table
constexpr std::uint64_t kMaxEhFrame = 64ull << 20;  // .eh_frame parsed in memory
constexpr std::uint64_t kAddressLimit = std::uint64_t{1} << 40;

std::uint64_t Load(const std::uint8_t* p, int bytes) { return LoadLe(p, bytes); }

// Reads [offset, offset + n) of `file` into `out`; false (and *io set on an I/O error) if
// it does not lie inside the file.
bool ReadRange(RandomAccessFile& file, std::uint64_t offset, std::uint64_t n,
               std::vector<std::uint8_t>* out, Status* io) {
  if (offset > file.Size() || n > file.Size() - offset) return false;
  out->resize(static_cast<std::size_t>(n));
  if (n == 0) return true;
  auto got = file.ReadAt(offset, *out);
  if (!got.ok()) {
    *io = got.error();
    return false;
  }
  return *got == n;
}

// A cursor over .eh_frame bytes; every read is bounds-checked and sets `ok` false past the end.
struct Cursor {
  const std::vector<std::uint8_t>& b;
  std::size_t pos;
  std::size_t end;
  bool ok = true;
  std::uint64_t Fixed(int n) {
    if (!ok || end - pos < static_cast<std::size_t>(n)) {
      ok = false;
      return 0;
    }
    std::uint64_t v = Load(&b[pos], n);
    pos += static_cast<std::size_t>(n);
    return v;
  }
  std::uint64_t Leb() {
    std::uint64_t v = 0;
    for (int shift = 0; ok && shift < 64; shift += 7) {
      std::uint8_t byte = static_cast<std::uint8_t>(Fixed(1));
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    ok = false;
    return 0;
  }
  void Skip(std::size_t n) {
    if (!ok || end - pos < n) {
      ok = false;
      return;
    }
    pos += n;
  }
};

// Size of a DWARF pointer encoding's value, or 0 for the variable-length and unknown ones.
int EncodedSize(std::uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x00:
    case 0x04:
    case 0x0c:
      return 8;
    case 0x02:
    case 0x0a:
      return 2;
    case 0x03:
    case 0x0b:
      return 4;
    default:
      return 0;
  }
}

constexpr std::uint8_t kOmit = 0xff;
constexpr std::uint8_t kPcrelSdata4 = 0x1b;

}  // namespace

Result<ElfLayout> ElfLayout::Read(RandomAccessFile& file, std::uint8_t tables, bool code) {
  ElfLayout layout;
  Status io = OkStatus();
  std::vector<std::uint8_t> head;
  std::uint64_t n = std::min<std::uint64_t>(file.Size(), kHeadBytes);
  if (!ReadRange(file, 0, n, &head, &io) || head.size() < 64) {
    if (!io.ok()) return io.error();
    return layout;
  }
  std::uint64_t phoff = Load(&head[0x20], 8);
  std::uint64_t phentsize = Load(&head[0x36], 2);
  std::uint64_t phnum = Load(&head[0x38], 2);
  if (phentsize == 56 && phnum <= kMaxSegments && phoff <= head.size() &&
      phnum * 56 <= head.size() - phoff) {
    for (std::uint64_t k = 0; k < phnum; ++k) {
      const std::uint8_t* ph = &head[phoff + k * 56];
      if (Load(ph, 4) != 1) continue;  // PT_LOAD
      Segment s{Load(ph + 8, 8), Load(ph + 32, 8), Load(ph + 16, 8), Load(ph + 40, 8)};
      if (s.offset >= kAddressLimit || s.vaddr >= kAddressLimit || s.filesz >= kAddressLimit ||
          s.memsz >= kAddressLimit || s.filesz > s.memsz) {
        continue;
      }
      layout.segments_.push_back(s);
    }
  }
  if (tables != 0 || code) layout.AddSections(file, head, tables, code, &io);
  if (!io.ok()) return io.error();
  return layout;
}

void ElfLayout::AddSections(RandomAccessFile& file, const std::vector<std::uint8_t>& head,
                            std::uint8_t tables, bool code, Status* io) {
  std::uint64_t shoff = Load(&head[0x28], 8);
  std::uint64_t shentsize = Load(&head[0x3A], 2);
  std::uint64_t shnum = Load(&head[0x3C], 2);
  std::uint64_t shstrndx = Load(&head[0x3E], 2);
  if (shentsize != 64 || shnum == 0 || shnum > kMaxSections || shstrndx >= shnum) return;
  std::vector<std::uint8_t> shdrs, names;
  if (!ReadRange(file, shoff, shnum * 64, &shdrs, io)) return;
  const std::uint8_t* strsh = &shdrs[shstrndx * 64];
  std::uint64_t names_size = Load(strsh + 32, 8);
  if (names_size > kMaxNames || !ReadRange(file, Load(strsh + 24, 8), names_size, &names, io)) {
    return;
  }
  std::vector<Table> found;
  for (std::uint64_t k = 0; k < shnum; ++k) {
    const std::uint8_t* sh = &shdrs[k * 64];
    std::uint64_t name_at = Load(sh, 4);
    std::uint32_t type = static_cast<std::uint32_t>(Load(sh + 4, 4));
    std::uint64_t offset = Load(sh + 24, 8), size = Load(sh + 32, 8), entsize = Load(sh + 56, 8);
    if (type == 8 /* SHT_NOBITS */ || size == 0 || offset > file.Size() ||
        size > file.Size() - offset || name_at >= names.size()) {
      continue;
    }
    if (code && type == 1 /* SHT_PROGBITS */ && (Load(sh + 8, 8) & 4) != 0 /* SHF_EXECINSTR */) {
      code_.emplace_back(offset, offset + size);
    }
    const char* name_begin = reinterpret_cast<const char*>(&names[name_at]);
    std::string_view name(name_begin, strnlen(name_begin, names.size() - name_at));
    Table t{offset, offset + size, TableKind::kRela};
    if (type == 4 /* SHT_RELA */ && entsize == 24) {
      t.kind = TableKind::kRela;
    } else if ((type == 11 /* SHT_DYNSYM */ || type == 2 /* SHT_SYMTAB */) && entsize == 24) {
      t.kind = TableKind::kSymbols;
    } else if (type == 14 || type == 15 || type == 16 /* init/fini/preinit arrays */ ||
               name == ".data.rel.ro" || name == ".got" || name == ".got.plt") {
      t.kind = TableKind::kPointers;
    } else if (name == ".eh_frame_hdr") {
      t.kind = TableKind::kEhFrameHdr;
    } else if (name == ".eh_frame" && size <= kMaxEhFrame) {
      t.kind = TableKind::kEhFrame;
    } else {
      continue;
    }
    if ((tables & (1 << static_cast<int>(t.kind))) == 0) continue;
    found.push_back(t);
  }
  std::sort(code_.begin(), code_.end());
  std::size_t kept = 0;
  for (const auto& range : code_) {  // overlapping ranges: the first wins
    if (kept > 0 && range.first < code_[kept - 1].second) continue;
    code_[kept++] = range;
  }
  code_.resize(kept);
  std::stable_sort(found.begin(), found.end(),
                   [](const Table& a, const Table& b) { return a.begin < b.begin; });
  for (const Table& t : found) {
    if (!tables_.empty() && t.begin < tables_.back().end) continue;  // overlapping: first wins
    if (t.kind == TableKind::kEhFrameHdr) {
      // version 1, eh_frame_ptr pcrel|sdata4, count udata4, table datarel|sdata4.
      std::vector<std::uint8_t> hdr;
      if (!ReadRange(file, t.begin, 4, &hdr, io)) return;
      if (t.end - t.begin < 12 || hdr[0] != 1 || hdr[1] != kPcrelSdata4 || hdr[2] != 0x03 ||
          hdr[3] != 0x3b) {
        continue;
      }
    }
    if (t.kind == TableKind::kEhFrame) {
      std::vector<std::uint8_t> bytes;
      if (!ReadRange(file, t.begin, t.end - t.begin, &bytes, io)) return;
      ParseEhFrame(t.begin, bytes);
    }
    tables_.push_back(t);
  }
}

// Walks the CIE and FDE records: each FDE's CIE pointer, and the pcrel|sdata4 pointers
// (initial location, LSDA, a CIE's personality routine).
void ElfLayout::ParseEhFrame(std::uint64_t begin, const std::vector<std::uint8_t>& bytes) {
  struct Cie {
    std::uint8_t fde_enc = 0, lsda_enc = kOmit;
    bool augmented = false;
  };
  std::unordered_map<std::size_t, Cie> cies;
  std::size_t pos = 0;
  while (bytes.size() - pos >= 4) {
    std::uint64_t length = Load(&bytes[pos], 4);
    if (length == 0 || length == 0xffffffff || length > bytes.size() - pos - 4 || length < 4) break;
    std::size_t record_end = pos + 4 + static_cast<std::size_t>(length);
    std::uint64_t id = Load(&bytes[pos + 4], 4);
    Cursor c{bytes, pos + 8, record_end};
    if (id == 0) {
      Cie cie;
      std::uint8_t version = static_cast<std::uint8_t>(c.Fixed(1));
      std::size_t aug_at = c.pos;
      while (c.ok && c.Fixed(1) != 0) {
      }
      std::string_view aug(reinterpret_cast<const char*>(&bytes[aug_at]),
                           c.ok ? c.pos - aug_at - 1 : 0);
      c.Leb();  // code alignment
      c.Leb();  // data alignment (sleb128: same length)
      if (version == 1) {
        c.Fixed(1);
      } else {
        c.Leb();
      }
      if (c.ok && !aug.empty() && aug[0] == 'z') {
        cie.augmented = true;
        c.Leb();  // augmentation length
        for (char ch : aug.substr(1)) {
          if (!c.ok) break;
          if (ch == 'R') {
            cie.fde_enc = static_cast<std::uint8_t>(c.Fixed(1));
          } else if (ch == 'L') {
            cie.lsda_enc = static_cast<std::uint8_t>(c.Fixed(1));
          } else if (ch == 'P') {
            std::uint8_t enc = static_cast<std::uint8_t>(c.Fixed(1));
            if ((enc & 0x7f) == kPcrelSdata4 && c.ok && c.end - c.pos >= 4) {
              eh_fields_.push_back((begin + c.pos) << 1);
            }
            int size = EncodedSize(enc);
            if (size == 0) break;
            c.Skip(static_cast<std::size_t>(size));
          } else if (ch != 'S' && ch != 'B' && ch != 'G') {
            break;
          }
        }
      }
      if (c.ok) cies[pos] = cie;
    } else {
      std::size_t cie_at = pos + 4 >= id ? pos + 4 - static_cast<std::size_t>(id) : SIZE_MAX;
      eh_fields_.push_back((begin + pos + 4) << 1 | 1);  // the CIE pointer
      auto it = cies.find(cie_at);
      if (it != cies.end() && it->second.fde_enc == kPcrelSdata4 && c.end - c.pos >= 8) {
        eh_fields_.push_back((begin + pos + 8) << 1);  // initial location
        c.Skip(8);                                     // it and the address range
        if (it->second.augmented) {
          c.Leb();
          if (c.ok && it->second.lsda_enc == kPcrelSdata4 && c.end - c.pos >= 4) {
            eh_fields_.push_back((begin + c.pos) << 1);
          }
        }
      }
    }
    pos = record_end;
  }
  std::sort(eh_fields_.begin(), eh_fields_.end());
}

bool ElfLayout::OffsetToVaddr(std::uint64_t offset, std::int64_t* vaddr) const {
  for (const Segment& s : segments_) {
    if (offset >= s.offset && offset - s.offset < s.filesz) {
      *vaddr = static_cast<std::int64_t>(s.vaddr + (offset - s.offset));
      return true;
    }
  }
  return false;
}

bool ElfLayout::VaddrToOffset(std::int64_t vaddr, std::uint64_t* offset) const {
  if (vaddr < 0) return false;
  auto v = static_cast<std::uint64_t>(vaddr);
  for (const Segment& s : segments_) {
    if (v >= s.vaddr && v - s.vaddr < s.filesz) {
      *offset = s.offset + (v - s.vaddr);
      return true;
    }
  }
  return false;
}

bool ElfLayout::InImage(std::int64_t vaddr) const {
  if (vaddr < 0) return false;
  auto v = static_cast<std::uint64_t>(vaddr);
  for (const Segment& s : segments_) {
    if (v >= s.vaddr && v - s.vaddr < s.memsz) return true;
  }
  return false;
}

int ElfLayout::TableAt(std::uint64_t offset, std::uint64_t* end) const {
  auto it = std::upper_bound(tables_.begin(), tables_.end(), offset,
                             [](std::uint64_t v, const Table& t) { return v < t.begin; });
  if (it != tables_.begin() && offset < std::prev(it)->end) {
    *end = std::prev(it)->end;
    return static_cast<int>(std::prev(it)->kind);
  }
  *end = it == tables_.end() ? UINT64_MAX : it->begin;
  return -1;
}

bool ElfLayout::CodeAt(std::uint64_t offset, std::uint64_t* end) const {
  if (code_.empty()) {
    *end = UINT64_MAX;
    return true;
  }
  auto it = std::upper_bound(code_.begin(), code_.end(), offset,
                             [](std::uint64_t v, const auto& r) { return v < r.first; });
  if (it != code_.begin() && offset < std::prev(it)->second) {
    *end = std::prev(it)->second;
    return true;
  }
  *end = it == code_.end() ? UINT64_MAX : it->first;
  return false;
}

void ElfLayout::ForEachField(std::uint64_t begin, std::uint64_t end,
                             const std::function<void(const Field&)>& fn) const {
  auto it = std::upper_bound(tables_.begin(), tables_.end(), begin,
                             [](std::uint64_t v, const Table& t) { return v < t.begin; });
  if (it == tables_.begin()) return;
  const Table& t = *std::prev(it);
  if (begin >= t.end || end > t.end) return;
  // Fixed-stride tables: entry size, then the fields' places in an entry.
  auto strided = [&](std::uint64_t first, std::uint64_t stride, std::initializer_list<int> at,
                     std::uint8_t width, FieldBase base) {
    std::uint64_t entry = begin <= first ? first : first + (begin - first) / stride * stride;
    for (; entry < end; entry += stride) {
      for (int a : at) {
        std::uint64_t o = entry + static_cast<std::uint64_t>(a);
        // Relocation addends and pointer arrays are the arrays worth realigning.
        std::uint8_t array = t.kind == TableKind::kPointers                       ? 8
                             : t.kind == TableKind::kRela && a == 16              ? 24
                             : t.kind == TableKind::kEhFrameHdr && search_arrays_ ? 8
                                                                                  : 0;
        if (o >= begin && o + width <= end) fn(Field{o, width, base, t.begin, array, t.end});
      }
    }
  };
  switch (t.kind) {
    case TableKind::kRela:
      strided(t.begin, 24, {0, 16}, 8, FieldBase::kAbsolute);
      break;
    case TableKind::kSymbols:
      strided(t.begin, 24, {8}, 8, FieldBase::kAbsolute);
      break;
    case TableKind::kPointers:
      strided(t.begin, 8, {0}, 8, FieldBase::kAbsolute);
      break;
    case TableKind::kEhFrameHdr:
      if (begin <= t.begin + 4 && t.begin + 8 <= end) {  // eh_frame_ptr
        fn(Field{t.begin + 4, 4, FieldBase::kSelf, t.begin});
      }
      strided(t.begin + 12, 8, {0, 4}, 4, FieldBase::kSection);  // the search table
      break;
    case TableKind::kEhFrame: {
      auto f = std::lower_bound(eh_fields_.begin(), eh_fields_.end(), begin << 1);
      for (; f != eh_fields_.end() && (*f >> 1) + 4 <= end; ++f) {
        fn(Field{*f >> 1, 4, (*f & 1) != 0 ? FieldBase::kSelfBackward : FieldBase::kSelf, t.begin});
      }
      break;
    }
  }
}

}  // namespace qp::delta
