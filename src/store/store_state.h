// The durable state of one component in the store, and its journal: what is live, what
// the rollback copy holds, and which step of which operation was in flight. Written with
// WriteFileDurably before every side effect, so that recovery knows what to finish or undo.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/hash.h"

namespace qp::store {

// A state of a component tree: the base ("" label) or an improvement, and its digest
// (delta::ManifestDigest of the tree).
struct TreeState {
  std::string label;   // "" = the base as the last full update installed it
  std::string digest;  // lowercase hex
  bool operator==(const TreeState&) const = default;
};

// What was in flight when the journal was written (state.json spells them as the names).
enum class JournalOp { kInstall, kRemove };
enum class JournalPhase {
  kStaging,      // install: the new tree is being staged (nothing live changed)
  kStaged,       // install: staged and verified
  kActivated,    // install: the new tree is live, not yet health-checked
  kRollingBack,  // install: the health check failed; the old tree goes back
  kCommitting,   // install: committed; the rollback copy is being kept
  kRestoring,    // remove: the rollback copy is being made live again
};
std::string_view JournalOpName(JournalOp op);  // "install", "remove"
std::optional<JournalOp> ParseJournalOp(std::string_view name);
std::string_view JournalPhaseName(JournalPhase phase);  // "staging", ..., "rolling_back"
std::optional<JournalPhase> ParseJournalPhase(std::string_view name);

struct Journal {
  JournalOp op = JournalOp::kInstall;
  JournalPhase phase = JournalPhase::kStaging;
  TreeState from;
  TreeState to;
  std::uint64_t marker_inode = 0;    // owned directory: the inode that becomes live
  std::vector<std::string> changed;  // shared files: the files this operation replaces
  std::string reason;                // why a rollback happens
};

// An improvement that a full update of the component (or a package manager reinstalling
// it) replaced: what status shows until the next improvement is installed.
struct Supersession {
  std::string base, label;  // the improvement's
  std::string by;           // "libssl3 3.0.22-1~deb12u2", "base version 3.0.22"
  bool operator==(const Supersession&) const = default;
};

struct ComponentState {
  std::string base_version;
  TreeState current;
  std::optional<TreeState> previous;  // what the rollback copy holds
  std::optional<Journal> journal;
  std::optional<Supersession> superseded;  // since the last install
};

// kNotFound when the component has no state yet; kCorrupt names the file.
Result<ComponentState> LoadState(Env* env, const std::string& path);
Status SaveState(Env* env, const std::string& path, const ComponentState& state);

// One line of a component's history.
struct HistoryEntry {
  WallTime time;
  std::string op;    // install, rollback, remove, supersede, recover
  std::string from;  // label ("" = base)
  std::string to;
  std::string result;  // committed, rolled_back, failed, removed, superseded, recovered
  std::string reason;
};

// The history file holds at most `limit` entries (oldest dropped first).
Result<std::vector<HistoryEntry>> LoadHistory(Env* env, const std::string& path);
Status AppendHistory(Env* env, const std::string& path, const HistoryEntry& entry,
                     std::size_t limit);

}  // namespace qp::store
