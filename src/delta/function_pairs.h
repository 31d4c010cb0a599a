// Functions of two versions of an ELF file paired by their symbol names (.symtab where the
// file keeps it, else .dynsym): where each new function's bytes most likely came from. The
// matcher prefers such a pairing among equally long matches, so that a function is matched
// to its own earlier version rather than to a lookalike (Courgette's labels and Zucchini's
// equivalence maps pair code the same way). Differ side only; the patch does not carry it.
//
// The files are read defensively: a malformed or foreign file yields fewer pairs (none for
// a file that is not ELF64 little-endian), never an error.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace qp::delta {

struct FunctionPair {
  std::int64_t new_begin, new_end;  // the function's bytes in the new file
  std::int64_t shift;               // its old copy starts at new_begin + shift
};

// Pairs of functions whose names occur once in each file (and whose sizes are non-zero),
// sorted by new_begin and disjoint.
std::vector<FunctionPair> PairFunctionsBySymbol(std::span<const std::uint8_t> old_file,
                                                std::span<const std::uint8_t> new_file);

}  // namespace qp::delta
