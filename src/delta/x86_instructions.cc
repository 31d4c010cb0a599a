#include "delta/x86_instructions.h"

namespace qp::delta {
namespace {

// Immediate bytes after the displacement of a one-byte-opcode instruction with a ModRM
// operand, or -1 for opcodes not predicted. `reg` is the ModRM reg field (groups F6/F7).
int OneByteImmediate(std::uint8_t op, int reg) {
  if (op < 0x40 && (op & 7) < 4) return 0;  // ALU r/m,r and r,r/m forms (add ... cmp)
  switch (op) {
    case 0x63:
    case 0x84:
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x8A:
    case 0x8B:
    case 0x8D:
    case 0xD1:
    case 0xD3:
    case 0xFF:
      return 0;
    case 0x80:
    case 0x83:
    case 0xC6:
    case 0x6B:
    case 0xC0:
    case 0xC1:
      return 1;
    case 0x81:
    case 0xC7:
    case 0x69:
      return 4;
    case 0xF6:
      return reg < 2 ? 1 : 0;
    case 0xF7:
      return reg < 2 ? 4 : 0;
    default:
      return -1;
  }
}

// The same for two-byte opcodes 0F xx (SSE moves and arithmetic, cmov, movzx/movsx, imul).
int TwoByteImmediate(std::uint8_t op) {
  if ((op >= 0x10 && op <= 0x17) || op == 0x28 || op == 0x29 || op == 0x2A ||
      (op >= 0x2C && op <= 0x2F) || (op >= 0x40 && op <= 0x4F) || (op >= 0x51 && op <= 0x6F) ||
      (op >= 0x74 && op <= 0x76) || op == 0x7E || op == 0x7F || op == 0xAF || op == 0xB6 ||
      op == 0xB7 || op == 0xBE || op == 0xBF || (op >= 0xD0 && op <= 0xFE)) {
    return 0;
  }
  if (op == 0x70 || op == 0xC2 || op == 0xC4 || op == 0xC5 || op == 0xC6) return 1;
  return -1;
}

}  // namespace

bool MatchRipRelative(const std::uint8_t* d, std::size_t i, std::size_t n, std::size_t* disp_at,
                      std::size_t* end) {
  std::size_t j = i;
  if (j < n && (d[j] == 0x66 || d[j] == 0xF2 || d[j] == 0xF3)) ++j;
  if (j < n && (d[j] & 0xF0) == 0x40) ++j;
  if (j + 2 > n) return false;
  int imm;
  if (d[j] == 0x0F) {
    imm = TwoByteImmediate(d[j + 1]);
    j += 2;
  } else {
    if (j + 1 >= n) return false;
    imm = OneByteImmediate(d[j], (d[j + 1] >> 3) & 7);
    j += 1;
  }
  if (imm < 0 || j >= n || (d[j] & 0xC7) != 0x05) return false;
  std::size_t e = j + 5 + static_cast<std::size_t>(imm);
  if (e > n) return false;
  *disp_at = j + 1;
  *end = e;
  return true;
}

}  // namespace qp::delta
