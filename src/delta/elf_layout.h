// What the x86 predictor needs to know about an old x86-64 ELF file: its PT_LOAD segments
// (file offset <-> virtual address) and the sections whose contents are tables of
// addresses, with where each address field lies. The old file is the device's own copy
// (its digest is checked before a patch is applied), but it is read defensively all the
// same: anything malformed, oversized or out of range yields fewer fields, never an error;
// only I/O errors are reported.
//
// docs/patch-format.md ("Transform 2") specifies exactly which fields are found, since the
// differ and the applier must find the same ones.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace qp::delta {

class ElfLayout {
 public:
  struct Segment {
    std::uint64_t offset, filesz, vaddr, memsz;
  };
  // How a field's stored value relates to the address it stands for.
  enum class FieldBase : std::uint8_t {
    kAbsolute,      // 8 bytes: the address itself
    kSelf,          // 4 bytes signed: address - the field's own address
    kSelfBackward,  // 4 bytes: the field's own address - address (.eh_frame CIE pointers)
    kSection,       // 4 bytes signed: address - the address of the field's section
  };
  struct Field {
    std::uint64_t offset;  // in the old file
    std::uint8_t width;    // 4 or 8
    FieldBase base;
    std::uint64_t section_offset;  // where the field's section starts
    // Arrays whose entries may have shifted (an entry inserted or removed where the
    // matcher kept the old alignment): the entry size, 0 for other fields.
    std::uint8_t array_stride = 0;
    std::uint64_t section_end = 0;
  };

  // The kinds of address table, as bits of a mask (a patch says which ones it predicts).
  enum class TableKind : std::uint8_t { kRela, kSymbols, kPointers, kEhFrameHdr, kEhFrame };
  static constexpr int kTableKinds = 5;
  static constexpr std::uint8_t kAllTables = (1 << kTableKinds) - 1;

  // Reads the segments and the address tables of the kinds in `tables` (a mask of
  // 1 << TableKind), and with `code` the sections that hold instructions; kIo (or the
  // reader's error) on I/O errors.
  static Result<ElfLayout> Read(RandomAccessFile& file, std::uint8_t tables, bool code = false);

  const std::vector<Segment>& segments() const { return segments_; }

  bool OffsetToVaddr(std::uint64_t offset, std::int64_t* vaddr) const;
  bool VaddrToOffset(std::int64_t vaddr, std::uint64_t* offset) const;
  // True for an address inside a segment's memory image (.bss included).
  bool InImage(std::int64_t vaddr) const;

  // The kind of the address table `offset` lies in (as an int), with `*end` that table's
  // end; or -1, with `*end` where the next table starts (or UINT64_MAX).
  int TableAt(std::uint64_t offset, std::uint64_t* end) const;
  // Whether `offset` lies in a section of instructions (SHF_EXECINSTR), with `*end` that
  // section's end; else false, with `*end` where the next one starts (or UINT64_MAX). Read
  // without `code`, or from a file without such sections, every offset is code.
  bool CodeAt(std::uint64_t offset, std::uint64_t* end) const;
  // Makes the .eh_frame_hdr search table's fields array fields too (stride 8).
  void SetSearchTableArrays() { search_arrays_ = true; }
  // Calls `fn` for every field wholly inside [begin, end), in offset order. [begin, end)
  // must lie inside one table section. Fields of malformed tables may overlap; callers
  // skip a field that starts before the previous one ended.
  void ForEachField(std::uint64_t begin, std::uint64_t end,
                    const std::function<void(const Field&)>& fn) const;

 private:
  struct Table {
    std::uint64_t begin, end;
    TableKind kind;
  };
  void AddSections(RandomAccessFile& file, const std::vector<std::uint8_t>& head,
                   std::uint8_t tables, bool code, Status* io);
  void ParseEhFrame(std::uint64_t begin, const std::vector<std::uint8_t>& bytes);

  std::vector<Segment> segments_;
  std::vector<Table> tables_;                                  // sorted by begin, disjoint
  std::vector<std::pair<std::uint64_t, std::uint64_t>> code_;  // [begin, end), sorted, disjoint
  bool search_arrays_ = false;
  std::vector<std::uint64_t> eh_fields_;  // .eh_frame fields: offset << 1 | backward
};

}  // namespace qp::delta
