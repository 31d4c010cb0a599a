// TUF client benchmark (run by bench/tuf_bench.sh).
//
// 1. A repository with 10,000 targets spread over 50 delegated roles: the time for a cold
//    client to refresh and verify every role (top-level refresh plus one lookup that lands
//    in each delegated role), against a baseline measured in the same process: parsing
//    and hashing the same metadata bytes without any verification.
// 2. Signature verifications per second per key type (the script compares them with
//    `openssl speed` on the same machine).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/env.h"
#include "core/hash.h"
#include "core/test_dir.h"
#include "tuf/repo_simulator.h"
#include "tuf/updater.h"

namespace {

using Stopwatch = std::chrono::steady_clock;
constexpr int kRoles = 50;
constexpr int kTargets = 10000;

double Seconds(Stopwatch::time_point a, Stopwatch::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  using namespace qp;
  using namespace qp::tuf;
  WallTime now = std::chrono::system_clock::from_time_t(1800000000);
  RepoSimulator repo(now);
  for (int r = 0; r < kRoles; ++r) {
    DelegatedRole role;
    role.name = "role-" + std::to_string(r);
    role.paths = std::vector<std::string>{"r" + std::to_string(r) + "/*"};
    repo.Delegate("targets", role);
  }
  for (int t = 0; t < kTargets; ++t) {
    int r = t % kRoles;
    std::string content = "target " + std::to_string(t);
    repo.writer().AddTarget(
        "role-" + std::to_string(r),
        "r" + std::to_string(r) + "/file-" + std::to_string(t) + ".bin",
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(content.data()),
                                      content.size()));
  }
  if (!repo.writer().PublishAll().ok()) return 1;
  std::uint64_t metadata_bytes = 0;
  for (const auto& [name, bytes] : repo.files()) {
    if (name.rfind("metadata/", 0) == 0) metadata_bytes += bytes.size();
  }

  SimulatedClock clock(now);
  std::vector<double> verify_times;
  std::vector<double> baseline_times;
  for (int run = 0; run < 7; ++run) {
    TestDir dir;
    std::FILE* f = std::fopen(dir.Sub("root.json").c_str(), "wb");
    std::fwrite(repo.initial_root().data(), 1, repo.initial_root().size(), f);
    std::fclose(f);
    UpdaterConfig config;
    config.metadata_dir = dir.path();
    config.metadata_url = RepoSimulator::kMetadataUrl;
    config.target_base_url = RepoSimulator::kTargetsUrl;
    auto t0 = Stopwatch::now();
    Updater updater(config, Env::Default(), &repo, &clock);
    if (!updater.Refresh().ok()) return 1;
    for (int r = 0; r < kRoles; ++r) {
      auto info =
          updater.GetTargetInfo("r" + std::to_string(r) + "/file-" + std::to_string(r) + ".bin");
      if (!info.ok() || !info->has_value()) return 1;
    }
    auto t1 = Stopwatch::now();
    verify_times.push_back(Seconds(t0, t1));

    // Baseline: parse and SHA-256 the same metadata bytes, nothing verified or stored.
    auto b0 = Stopwatch::now();
    for (const auto& [name, bytes] : repo.files()) {
      if (name.rfind("metadata/", 0) != 0 || name == "metadata/root.json") continue;
      auto json = ParseJson(bytes);
      if (!json.ok()) return 1;
      (void)Sha256Of(bytes);
    }
    auto b1 = Stopwatch::now();
    baseline_times.push_back(Seconds(b0, b1));
  }
  double verify = Median(verify_times);
  double baseline = Median(baseline_times);
  std::printf("repository: %d targets in %d delegated roles, %.1f KB of metadata\n", kTargets,
              kRoles, static_cast<double>(metadata_bytes) / 1024.0);
  std::printf("cold refresh + verify all %d roles: %.1f ms (median of 7)\n", kRoles + 4,
              verify * 1000);
  std::printf("baseline parse + sha256 of the same bytes: %.1f ms\n", baseline * 1000);
  std::printf("ratio verify / baseline: %.2f\n", verify / baseline);

  const std::string message(400, 'm');
  std::span<const std::uint8_t> msg(reinterpret_cast<const std::uint8_t*>(message.data()),
                                    message.size());
  for (auto scheme :
       {crypto::Scheme::kEd25519, crypto::Scheme::kEcdsaP256, crypto::Scheme::kRsaPss}) {
    auto key = crypto::SigningKey::Generate(scheme);
    auto verifier = crypto::VerifyingKey::Parse(key->Public());
    auto sig = key->Sign(msg);
    int count = 0;
    auto t0 = Stopwatch::now();
    while (Seconds(t0, Stopwatch::now()) < 1.0) {
      for (int i = 0; i < 100; ++i) {
        if (!(*verifier)->Verify(msg, *sig).ok()) return 1;
      }
      count += 100;
    }
    double rate = count / Seconds(t0, Stopwatch::now());
    std::printf("verify/s %s: %.0f\n", std::string(crypto::SchemeName(scheme)).c_str(), rate);
  }
  return 0;
}
