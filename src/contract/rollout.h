// rollout.json: the rollout state of every published improvement, signed by the rollout
// role (online key: the server changes it for halts and auto-halts).
//
//   {"improvements": {"<component>/<base>/<label>": {"percent": 0..100, "halted": bool,
//                                                    "reason": text}}}
//
// A device installs an improvement when its cohort (Cohort()) is below percent * 100 and
// the rollout is not halted.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace qp::contract {

// The largest rollout.json read anywhere (a limit before allocation, even when signed).
inline constexpr std::uint64_t kMaxRolloutBytes = 16 << 20;

struct RolloutEntry {
  int percent = 0;
  bool halted = false;
  std::string reason;
  bool operator==(const RolloutEntry&) const = default;
};

struct Rollout {
  std::map<std::string, RolloutEntry> improvements;  // by improvement id

  // kCorrupt unless `bytes` is {"improvements": {id: {...}}}. A percent outside 0..100 is
  // clamped; unknown fields are ignored.
  static Result<Rollout> Parse(std::span<const std::uint8_t> bytes);
  // The entry of `id`, or nullptr.
  const RolloutEntry* Find(const std::string& id) const;
  nlohmann::json ToJson() const;
  // The published form: ToJson() indented by 2, with a final newline.
  std::string Serialize() const;
};

// The device's cohort for an improvement: the first 8 bytes of
// SHA-256(install_id + "/" + improvement_id) as a big-endian integer, mod 10000.
int Cohort(const std::string& install_id, const std::string& improvement_id);
bool InRollout(const std::string& install_id, const std::string& improvement_id, int percent);

}  // namespace qp::contract
