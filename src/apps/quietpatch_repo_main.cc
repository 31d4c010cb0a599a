// quietpatch-repo: the publisher's tool. Works on a repository directory (static files any
// web server or CDN can serve) and a keys directory (one 0600 file per key).
//
//   quietpatch-repo --repo R --keys K init [--root-keys 3] [--root-threshold 2]
//   quietpatch-repo --repo R build --component C --platform P --base B --base-tree DIR
//                   --new-tree DIR [--from LABEL=DIR ...] [--label L] [--cve ID ...]
//                   [--urgency critical|high|normal] [--exploited] [--restart UNIT ...] --out DIR
//   quietpatch-repo --repo R build --from-deb OLD.deb [--from-deb OLDER.deb ...] --to-deb NEW.deb
//                   [--from LABEL=DIR ...] [--component C] [--platform P] [--label L] ... --out DIR
//   quietpatch-repo --repo R --keys K publish DIR [--percent N]
//   quietpatch-repo --repo R --keys K rollout ID PERCENT | halt ID [--reason TEXT] | resume ID
//   quietpatch-repo --repo R --keys K revoke ID
//   quietpatch-repo --repo R --keys K rotate-key ROLE [--threshold N]
//   quietpatch-repo --repo R --keys K refresh [--days 2]
//   quietpatch-repo --repo R status | verify | bundle ID --out FILE
//
// With --database postgresql://... the repository lives in the database that the server
// instances share (docs/server.md, "Several instances"): R is the publisher's working copy.
// Every command pulls it first; a command that changes the repository pushes its change as
// one generation, refused (nothing changed in the database) when another push came
// between: run the command again.
//
// ID is component/base/label, e.g. openssl/3.0.17-1~deb12u2/a. Exit status 0 on success,
// 1 on failure (nothing changed), 2 on bad usage. Key material is never printed.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "apps/main_guard.h"
#include "core/clock.h"
#include "core/log.h"
#include "online/repo_db.h"
#include "publish/publisher.h"

namespace {

int Fail(const qp::Error& e) {
  std::cerr << "quietpatch-repo: " << e.ToString() << "\n";
  return 1;
}

int Run(int argc, char** argv) {
  CLI::App app{"quietpatch-repo: build, sign and roll out security improvements"};
  qp::publish::RepoPaths paths;
  paths.repo_dir = "repo";
  paths.keys_dir = "keys";
  app.add_option("--repo", paths.repo_dir, "repository directory");
  app.add_option("--keys", paths.keys_dir, "keys directory");
  std::string database;
  app.add_option("--database", database,
                 "postgresql://... shared by the server instances (--repo: a working copy)");
  app.require_subcommand(1);

  qp::publish::InitOptions init_options;
  auto* init = app.add_subcommand("init", "create keys and the first signed metadata");
  init->add_option("--root-keys", init_options.root_keys, "number of root keys");
  init->add_option("--root-threshold", init_options.root_threshold, "root signatures required");

  qp::publish::BuildSpec spec;
  std::vector<std::string> from;
  auto* build = app.add_subcommand("build", "build an improvement's patches");
  std::vector<std::string> from_debs;
  std::string to_deb;
  build->add_option("--component", spec.component, "default with --to-deb: its Package");
  build->add_option("--platform", spec.platform, "default with --to-deb: its Architecture's");
  auto* base_opt = build->add_option("--base", spec.base, "base version");
  auto* base_tree_opt =
      build->add_option("--base-tree", spec.base_tree, "the tree as the base installed it");
  auto* new_tree_opt = build->add_option("--new-tree", spec.new_tree, "the fixed tree");
  auto* from_deb_opt = build->add_option(
      "--from-deb", from_debs, "a Debian package of a base version (repeatable: N-1, N-2, ...)");
  auto* to_deb_opt = build->add_option("--to-deb", to_deb, "the Debian package with the fix");
  from_deb_opt->needs(to_deb_opt);
  to_deb_opt->needs(from_deb_opt);
  for (auto* o : {base_opt, base_tree_opt, new_tree_opt}) {
    o->excludes(from_deb_opt);
    o->excludes(to_deb_opt);
  }
  build->add_option("--from", from, "LABEL=DIR of an earlier improvement still installed");
  build->add_option("--label", spec.label, "default: the next free letter");
  build->add_option("--cve", spec.cves, "CVE id fixed (repeatable)");
  build->add_option("--urgency", spec.urgency, "critical, high or normal");
  build->add_flag("--exploited", spec.exploited, "exploited in the wild");
  build->add_option("--restart", spec.restart, "service to restart (repeatable)");
  build->add_option("--out", spec.out_dir, "new directory for the result")->required();
  build->add_option("--threads", spec.threads, "diff threads");

  std::string dir;
  int percent = 0;
  auto* publish = app.add_subcommand("publish", "sign and publish a built improvement");
  publish->add_option("DIR", dir)->required();
  publish->add_option("--percent", percent, "initial rollout percentage (default 0)");

  std::string id, reason;
  auto* rollout = app.add_subcommand("rollout", "set the rollout percentage");
  rollout->add_option("ID", id)->required();
  rollout->add_option("PERCENT", percent)->required();
  auto* halt = app.add_subcommand("halt", "halt a rollout");
  halt->add_option("ID", id)->required();
  halt->add_option("--reason", reason);
  auto* resume = app.add_subcommand("resume", "resume a halted rollout");
  resume->add_option("ID", id)->required();
  auto* revoke = app.add_subcommand("revoke", "revoke an improvement (devices roll it back)");
  revoke->add_option("ID", id)->required();
  std::string role;
  int threshold = 0;
  auto* rotate = app.add_subcommand("rotate-key", "replace a role's key");
  rotate->add_option("ROLE", role)->required();
  rotate->add_option("--threshold", threshold, "new threshold for the role");
  int days = 2;
  auto* refresh = app.add_subcommand("refresh", "re-sign what expires soon");
  refresh->add_option("--days", days, "re-sign roles expiring within this many days");
  auto* status = app.add_subcommand("status", "what is published, rollout state, expiry");
  auto* verify = app.add_subcommand("verify", "check the whole repository as a device would");
  std::string out;
  auto* bundle = app.add_subcommand("bundle", "one file with an improvement for offline devices");
  bundle->add_option("ID", id)->required();
  bundle->add_option("--out", out)->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  (void)qp::InitLogging("warn", qp::LogTarget::kStderr);
  qp::Env* env = qp::Env::Default();
  qp::Clock* clock = qp::Clock::Real();
  qp::Status s;
  // ID (component/base/label) of the commands that name an improvement.
  qp::contract::ImprovementId improvement;
  if (rollout->parsed() || halt->parsed() || resume->parsed() || revoke->parsed() ||
      bundle->parsed()) {
    auto parsed = qp::contract::ImprovementId::Parse(id);
    if (!parsed.ok()) {
      std::cerr << "quietpatch-repo: " << parsed.error().message() << " (got \"" << id << "\")\n";
      return 2;
    }
    improvement = *parsed;
  }
  // The shared repository: pulled before the command, pushed after a change.
  std::unique_ptr<qp::online::RepoDb> db;
  qp::online::RepoGeneration based_on;
  const bool changes = init->parsed() || publish->parsed() || rollout->parsed() || halt->parsed() ||
                       resume->parsed() || revoke->parsed() || rotate->parsed() ||
                       refresh->parsed();
  if (!database.empty()) {
    auto opened = qp::online::RepoDb::Open(database);
    if (!opened.ok()) return Fail(opened.error());
    db = std::move(*opened);
    auto pulled = init->parsed() ? db->Current() : db->Pull(env, paths.repo_dir, 0);
    if (!pulled.ok()) return Fail(pulled.error());
    based_on = *pulled;
    if (init->parsed() && based_on.number != 0) {
      std::cerr << "quietpatch-repo: the database already holds a repository (generation "
                << based_on.number << ")\n";
      return 1;
    }
    if (!init->parsed() && based_on.number == 0) {
      std::cerr << "quietpatch-repo: the database holds no repository yet (init --database)\n";
      return 1;
    }
  }
  if (init->parsed()) {
    s = qp::publish::InitRepository(env, clock, paths, init_options);
    if (s.ok())
      std::cout << "repository created in " << paths.repo_dir << ", keys in " << paths.keys_dir
                << "\n";
  } else if (build->parsed()) {
    for (const auto& f : from) {
      auto eq = f.find('=');
      if (eq == std::string::npos) {
        std::cerr << "quietpatch-repo: --from expects LABEL=DIR\n";
        return 2;
      }
      spec.earlier.emplace_back(f.substr(0, eq), f.substr(eq + 1));
    }
    bool tty = ::isatty(2) != 0;
    spec.progress = [tty](const std::string& line) {
      if (tty) std::cerr << "\r\033[K" << line << std::flush;
    };
    spec.clock = clock;
    if (to_deb.empty()) {
      if (spec.component.empty() || spec.platform.empty() || spec.base.empty() ||
          spec.base_tree.empty() || spec.new_tree.empty()) {
        std::cerr << "quietpatch-repo: build needs --component, --platform, --base, --base-tree "
                     "and --new-tree, or --from-deb and --to-deb\n";
        return 2;
      }
      s = qp::publish::BuildImprovement(env, paths, spec);
    } else {
      s = qp::publish::BuildImprovementFromDebs(env, paths, spec, from_debs, to_deb);
    }
    if (tty) std::cerr << "\r\033[K";
    if (s.ok()) std::cout << "built " << spec.out_dir << "\n";
  } else if (publish->parsed()) {
    s = qp::publish::PublishImprovement(env, clock, paths, dir, percent);
  } else if (rollout->parsed()) {
    s = qp::online::SetRollout(env, clock, paths, improvement, percent, std::nullopt, "");
  } else if (halt->parsed()) {
    s = qp::online::SetRollout(env, clock, paths, improvement, std::nullopt, true,
                               reason.empty() ? "halted by the publisher" : reason);
  } else if (resume->parsed()) {
    s = qp::online::SetRollout(env, clock, paths, improvement, std::nullopt, false, "");
  } else if (revoke->parsed()) {
    s = qp::publish::Revoke(env, clock, paths, improvement);
  } else if (rotate->parsed()) {
    s = qp::publish::RotateKey(env, clock, paths, role,
                               threshold > 0 ? std::optional<int>(threshold) : std::nullopt);
  } else if (refresh->parsed()) {
    s = qp::publish::RefreshExpiring(env, clock, paths, days);
  } else if (status->parsed()) {
    auto text = qp::publish::DescribeRepository(env, clock, paths);
    if (!text.ok()) return Fail(text.error());
    std::cout << *text;
  } else if (verify->parsed()) {
    s = qp::publish::VerifyRepository(env, clock, paths);
    if (s.ok()) std::cout << "repository verifies as a device sees it\n";
  } else if (bundle->parsed()) {
    s = qp::publish::MakeBundle(env, clock, paths, improvement, out);
  }
  if (!s.ok()) return Fail(s.error());
  if (db != nullptr && changes) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    auto pushed =
        db->Push(env, paths.repo_dir, based_on.number, std::string("quietpatch-repo@") + host);
    if (!pushed.ok()) return Fail(pushed.error());
    std::cout << "pushed generation " << pushed->number << " (timestamp version "
              << pushed->timestamp_version << ") to the database\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return qp::apps::GuardedMain("quietpatch-repo", Run, argc, argv);
}
