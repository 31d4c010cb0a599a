// Test fixture shared by the client tests: a RepoSimulator, a simulated clock and a
// metadata directory holding the initial trusted root.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "core/env.h"
#include "core/test_dir.h"
#include "tuf/repo_simulator.h"
#include "tuf/updater.h"

namespace qp::tuf {

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ResetRepo(true, crypto::Scheme::kEd25519); }

  void ResetRepo(bool consistent, crypto::Scheme scheme) {
    repo_ = std::make_unique<RepoSimulator>(start_, consistent, scheme);
    // A new repository means a new client: forget what the last one stored.
    auto names = Env::Default()->ListDir(dir_.path());
    ASSERT_TRUE(names.ok());
    for (const auto& name : *names) (void)Env::Default()->Unlink(dir_.Sub(name));
    WriteTestFile(dir_.Sub("root.json"), Str(repo_->initial_root()));
  }

  UpdaterConfig Config() const {
    UpdaterConfig c;
    c.metadata_dir = dir_.path();
    c.metadata_url = RepoSimulator::kMetadataUrl;
    c.target_base_url = RepoSimulator::kTargetsUrl;
    return c;
  }

  Status Refresh() {
    repo_->metadata_requests.clear();
    Updater updater(Config(), Env::Default(), repo_.get(), &clock_);
    return updater.Refresh();
  }

  static std::string Str(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }
  static std::vector<std::uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

  // What the client stored for `role` ("" when nothing).
  std::string Stored(const std::string& role) const {
    std::string path = dir_.Sub(PercentEncode(role) + ".json");
    return TestPathExists(path) ? ReadTestFile(path) : "";
  }
  std::string Served(const std::string& file) { return Str(repo_->files().at("metadata/" + file)); }
  std::uint64_t StoredVersion(const std::string& role) const {
    std::string s = Stored(role);
    if (s.empty()) return 0;
    auto j = ParseJson(s);
    return j.ok() ? (*j)["signed"]["version"].get<std::uint64_t>() : 0;
  }

  RepositoryWriter& W() { return repo_->writer(); }

  WallTime start_ = std::chrono::system_clock::from_time_t(1800000000);
  SimulatedClock clock_{start_};
  TestDir dir_;
  std::unique_ptr<RepoSimulator> repo_;
};

}  // namespace qp::tuf
