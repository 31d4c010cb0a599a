// Recognising the x86-64 instructions whose 32-bit displacement the predictor re-aims:
// relative calls and jumps, and instructions with a RIP-relative memory operand. Byte
// patterns only (no full decoder): the tables are in docs/patch-format.md ("Transform 2").
#pragma once

#include <cstddef>
#include <cstdint>

namespace qp::delta {

// An instruction with a RIP-relative operand starting at d[i]: an optional 66/F2/F3
// prefix, an optional REX prefix, a one- or two-byte opcode from the tables, ModRM with
// mod=00 rm=101, disp32, immediate. Sets the displacement's position and the instruction's
// end; false if none, or if it does not end inside [0, n).
bool MatchRipRelative(const std::uint8_t* d, std::size_t i, std::size_t n, std::size_t* disp_at,
                      std::size_t* end);

}  // namespace qp::delta
