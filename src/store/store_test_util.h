// Test fixture for the store: an old and a new version of a small component, a .qpatch
// between them, and component configurations for both activation modes.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "core/durable_file.h"
#include "core/hash.h"
#include "core/test_dir.h"
#include "delta/tree_manifest.h"
#include "delta/tree_patch.h"
#include "store/store.h"

namespace qp::store {

// A stanza of dpkg's status file, with the fields dpkg-query wants.
inline std::string DpkgStanzaText(const std::string& package, const std::string& arch,
                                  const std::string& status, const std::string& version,
                                  const std::string& conffile = "") {
  return "Package: " + package + "\nStatus: " + status +
         "\nMaintainer: Test <test@example.org>\nArchitecture: " + arch +
         "\nMulti-Arch: same\nVersion: " + version +
         (conffile.empty() ? ""
                           : "\nConffiles:\n " + conffile + " 0123456789abcdef0123456789abcdef") +
         "\nDescription: test package\n\n";
}

// A dpkg database that `dpkg-query --admindir=DIR` reads: status and the info directory.
inline void WriteDpkgDatabase(const std::string& dir, const std::string& stanzas) {
  ASSERT_TRUE(MakeDirs(Env::Default(), dir + "/info").ok());
  ASSERT_TRUE(MakeDirs(Env::Default(), dir + "/updates").ok());
  WriteTestFile(dir + "/info/format", "1\n");
  WriteTestFile(dir + "/status", stanzas);
}

// Content of a tree: relative path -> bytes ("->target" makes a symlink).
using TreeSpec = std::map<std::string, std::string>;

// `n` bytes that do not compress (a fixed sequence per `seed`): a file of these is patched
// with a delta, not stored whole.
inline std::string Noise(std::size_t n, std::uint32_t seed) {
  std::string out(n, '\0');
  for (auto& c : out) {
    seed = seed * 1664525u + 1013904223u;
    c = static_cast<char>(seed >> 24);
  }
  return out;
}

inline TreeSpec OldTree() {
  return {{"bin/tool", std::string(3000, 'a') + "tool v1"},
          {"lib/libfoo.so.1.2", Noise(5000, 1) + "foo v1"},
          {"lib/libfoo.so.1", "->libfoo.so.1.2"},
          {"share/unchanged.txt", "same in both versions"},
          {"share/removed.txt", "only in the old version"}};
}

inline TreeSpec NewTree() {
  return {{"bin/tool", std::string(3000, 'a') + "tool v2, fixed"},
          {"lib/libfoo.so.1.3", Noise(5000, 1) + "foo v2, fixed"},
          {"lib/libfoo.so.1", "->libfoo.so.1.3"},
          {"share/unchanged.txt", "same in both versions"},
          {"share/added.txt", "only in the new version"}};
}

// Shared-files flavour: the same file names in both versions.
inline TreeSpec OldFiles() {
  return {{"lib/libssl.so.3", std::string(4000, 's') + "ssl v1"},
          {"lib/libcrypto.so.3", Noise(6000, 2) + "crypto v1"},
          {"etc/unchanged.cnf", "same"}};
}
inline TreeSpec NewFiles() {
  return {{"lib/libssl.so.3", std::string(4000, 's') + "ssl v2"},
          {"lib/libcrypto.so.3", Noise(6000, 2) + "crypto v2 fixed"},
          {"etc/unchanged.cnf", "same"}};
}

inline void MakeTree(const std::string& root, const TreeSpec& spec) {
  Env* env = Env::Default();
  ASSERT_TRUE(MakeDirs(env, root, 0755).ok());
  for (const auto& [path, content] : spec) {
    std::string full = JoinPath(root, path);
    ASSERT_TRUE(MakeDirs(env, DirName(full), 0755).ok());
    if (content.rfind("->", 0) == 0) {
      ASSERT_TRUE(env->Symlink(content.substr(2), full).ok());
    } else {
      WriteTestFile(full, content);
    }
  }
}

inline std::string TreeDigest(const std::string& root) {
  auto m = delta::ScanTree(Env::Default(), root);
  return m.ok() ? HexEncode(delta::ManifestDigest(*m)) : "<" + m.error().ToString() + ">";
}

// A component, its two versions and the patch between them, in one of the two modes.
class StoreFixture {
 public:
  explicit StoreFixture(RootKind kind) : kind_(kind) { Reset(); }

  // Fresh live files (the old version), empty state; the patch is built once.
  void Reset() {
    Env* env = Env::Default();
    (void)RemoveTree(env, dir_.Sub("live"));
    (void)RemoveTree(env, dir_.Sub("state"));
    (void)RemoveTree(env, dir_.Sub("shadow"));
    ASSERT_TRUE(MakeDirs(env, dir_.Sub("state")).ok());
    ASSERT_TRUE(MakeDirs(env, dir_.Sub("shadow")).ok());
    config_ = ComponentConfig{};
    config_.name = "comp";
    config_.platform = "linux-x86_64";
    config_.kind = kind_;
    config_.base_version.literal = "1.0";
    config_.health_check = {"health-check"};
    if (kind_ == RootKind::kOwnedDirectory) {
      config_.root = dir_.Sub("live/opt/comp");
      MakeTree(config_.root, OldTree());
    } else {
      MakeTree(dir_.Sub("live"), OldFiles());
      for (const auto& [path, content] : OldFiles())
        config_.files.push_back(dir_.Sub("live/" + path));
    }
    if (patch_.empty()) BuildPatch();
  }

  // The tree the patch engine sees: the root, or a view of the shared files.
  void BuildView(const std::string& view, const TreeSpec& spec) {
    for (const auto& [path, content] : spec) {
      std::string full = JoinPath(view, dir_.Sub("live/" + path).substr(1));
      ASSERT_TRUE(MakeDirs(Env::Default(), DirName(full), 0755).ok());
      WriteTestFile(full, content);
    }
    for (std::string d = DirName(JoinPath(view, dir_.Sub("live/x").substr(1)));
         d.size() > view.size(); d = DirName(d)) {
      ASSERT_TRUE(Env::Default()->Chmod(d, 0755).ok());
    }
  }

  void BuildPatch() {
    Env* env = Env::Default();
    std::string old_tree = dir_.Sub("v-old");
    std::string new_tree = dir_.Sub("v-new");
    if (kind_ == RootKind::kOwnedDirectory) {
      MakeTree(old_tree, OldTree());
      MakeTree(new_tree, NewTree());
    } else {
      BuildView(old_tree, OldFiles());
      BuildView(new_tree, NewFiles());
    }
    old_digest_ = TreeDigest(old_tree);
    new_digest_ = TreeDigest(new_tree);
    patch_ = dir_.Sub("fix.qpatch");
    auto built = delta::BuildTreePatch(env, old_tree, new_tree, patch_, delta::BuildOptions{});
    ASSERT_TRUE(built.ok()) << built.error().ToString();
  }

  // The digest of what is live now.
  std::string LiveDigest() {
    if (kind_ == RootKind::kOwnedDirectory) return TreeDigest(config_.root);
    std::string view = dir_.Sub("live-view");
    (void)RemoveTree(Env::Default(), view);
    TreeSpec spec;
    for (const auto& f : config_.files) {
      std::string rel = f.substr(dir_.Sub("live/").size());
      spec[rel] = ReadTestFile(f);
    }
    BuildView(view, spec);
    std::string d = TreeDigest(view);
    (void)RemoveTree(Env::Default(), view);
    return d;
  }

  // Files or directories that staging may leave behind.
  std::vector<std::string> Leftovers() {
    std::vector<std::string> out;
    Env* env = Env::Default();
    std::vector<std::string> dirs;
    if (kind_ == RootKind::kOwnedDirectory) {
      dirs.push_back(DirName(config_.root));
    } else {
      dirs = {dir_.Sub("live/lib"), dir_.Sub("live/etc"), dir_.Sub("state/comp")};
    }
    for (const auto& d : dirs) {
      auto names = env->ListDir(d);
      if (!names.ok()) continue;
      for (const auto& n : *names) {
        if (n.find(".qp-staging") != std::string::npos ||
            n.find(".qp-partial") != std::string::npos || n.find(".qp-new") != std::string::npos ||
            n.find(".qp-old") != std::string::npos || n.find(".qp-tmp") != std::string::npos ||
            n == "view" || n == "staged") {
          out.push_back(JoinPath(d, n));
        }
      }
    }
    return out;
  }

  StoreOptions Options(Env* env, bool healthy = true) {
    StoreOptions o;
    o.state_dir = dir_.Sub("state");
    o.env = env;
    o.clock = &clock_;
    o.space_margin_bytes = 0;
    o.run_command = [healthy](const std::vector<std::string>& argv, std::chrono::milliseconds,
                              const std::vector<std::string>&) -> Result<CommandOutcome> {
      CommandOutcome out;
      out.exit_code = (argv[0] != "health-check" || healthy) ? 0 : 1;
      if (out.exit_code != 0) out.output = "self-test failed: handshake error\n";
      return out;
    };
    return o;
  }

  InstallRequest Request() const {
    return InstallRequest{patch_, TreeState{"", old_digest_}, TreeState{"a", new_digest_}};
  }

  std::string StateFile() { return ReadTestFile(dir_.Sub("state/comp/state.json")); }

  RootKind kind_;
  TestDir dir_;
  ComponentConfig config_;
  std::string patch_;
  std::string old_digest_, new_digest_;
  SimulatedClock clock_{std::chrono::system_clock::from_time_t(1800000000)};
};

}  // namespace qp::store
