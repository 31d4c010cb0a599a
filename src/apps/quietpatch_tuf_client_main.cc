// quietpatch-tuf-client: a small TUF client for conformance testing, speaking the
// tuf-conformance client-under-test protocol:
//
//   quietpatch-tuf-client --metadata-dir D init TRUSTED_ROOT
//   quietpatch-tuf-client --metadata-url U --metadata-dir D refresh
//   quietpatch-tuf-client --metadata-url U --metadata-dir D --target-name T [--target-name T2]
//                         --target-base-url B --target-dir TD download
//
// Exit status 0 on success and 1 on any failure (never anything else). Logs go to stderr.
// D holds only verified metadata under non-versioned names; downloaded targets are stored
// in TD under their percent-encoded target path.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "apps/main_guard.h"
#include "core/clock.h"
#include "core/durable_file.h"
#include "core/env.h"
#include "core/log.h"
#include "net/http_fetcher.h"
#include "tuf/updater.h"

namespace {

int Fail(const std::string& what, const qp::Error& e) {
  spdlog::error("{}: {}", what, e.ToString());
  return 1;
}

int Init(const std::string& metadata_dir, const std::string& trusted_root) {
  qp::Env* env = qp::Env::Default();
  auto root = qp::ReadFileLimited(env, trusted_root, qp::tuf::kMaxRootBytes);
  if (!root.ok()) return Fail("init", root.error());
  if (auto s = qp::MakeDirs(env, metadata_dir); !s.ok()) return Fail("init", s.error());
  auto s = qp::WriteFileDurably(env, qp::JoinPath(metadata_dir, "root.json"), *root, 0644);
  if (!s.ok()) return Fail("init", s.error());
  return 0;
}

int Run(int argc, char** argv) {
  CLI::App app{"quietpatch-tuf-client: TUF 1.0 conformance client"};
  std::string metadata_dir;
  std::string metadata_url;
  std::vector<std::string> target_names;
  std::string target_base_url;
  std::string target_dir;
  std::string log_level = "info";
  app.add_option("--metadata-dir", metadata_dir, "trusted metadata directory")->required();
  app.add_option("--metadata-url", metadata_url, "base URL of the repository metadata");
  app.add_option("--target-name", target_names, "target path to download (repeatable)");
  app.add_option("--target-base-url", target_base_url, "base URL of the targets");
  app.add_option("--target-dir", target_dir, "where downloaded targets are stored");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  std::string trusted_root;
  auto* init = app.add_subcommand("init", "store the trusted root; no network");
  init->add_option("TRUSTED_ROOT", trusted_root)->required();
  auto* refresh = app.add_subcommand("refresh", "update the top-level metadata");
  auto* download = app.add_subcommand("download", "refresh, then download each target");
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return 0;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 1;
  }
  if (auto s = qp::InitLogging(log_level, qp::LogTarget::kStderr); !s.ok()) {
    std::cerr << s.error().ToString() << "\n";
    return 1;
  }
  if (init->parsed()) return Init(metadata_dir, trusted_root);
  if (metadata_url.empty()) {
    spdlog::error("--metadata-url is required");
    return 1;
  }

  qp::net::HttpFetcher fetcher;
  qp::tuf::UpdaterConfig config;
  config.metadata_dir = metadata_dir;
  config.metadata_url = metadata_url;
  config.target_base_url = target_base_url;
  qp::tuf::Updater updater(config, qp::Env::Default(), &fetcher, qp::Clock::Real());
  if (auto s = updater.Refresh(); !s.ok()) return Fail("refresh", s.error());
  if (refresh->parsed()) return 0;

  if (download->parsed()) {
    if (target_names.empty() || target_base_url.empty() || target_dir.empty()) {
      spdlog::error("download needs --target-name, --target-base-url and --target-dir");
      return 1;
    }
    qp::Env* env = qp::Env::Default();
    if (auto s = qp::MakeDirs(env, target_dir); !s.ok()) return Fail("download", s.error());
    for (const auto& name : target_names) {
      auto info = updater.GetTargetInfo(name);
      if (!info.ok()) return Fail("target " + name, info.error());
      if (!info->has_value()) {
        spdlog::error("target {}: not found in any trusted targets role", name);
        return 1;
      }
      std::string path = qp::JoinPath(target_dir, qp::tuf::PercentEncode(name));
      if (updater.IsDownloaded(**info, path)) {
        spdlog::info("target {}: already downloaded", name);
        continue;
      }
      if (auto s = updater.DownloadTarget(**info, path); !s.ok()) {
        return Fail("target " + name, s.error());
      }
      spdlog::info("target {}: downloaded", name);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return qp::apps::GuardedMain("quietpatch-tuf-client", Run, argc, argv);
}
