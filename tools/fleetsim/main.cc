// quietpatch-fleetsim: time to protection for fleets of up to 10^8 devices, by a
// discrete-event simulation calibrated from the project's own benchmark results.
//
//   quietpatch-fleetsim [--bench-dir bench] [--scenario FILE] [--devices N] [--threads N]
//                       [--seed N] [--agent NAME]... [--curves FILE] [--tsv FILE]
//
// Prints where every parameter came from, then one results row per agent model (quietpatch
// with watch and with polling only, and the anchors on the same population).
// Exit status: 0 on success, 1 on failure (with the reason on stderr), 2 on bad usage.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "apps/main_guard.h"
#include "core/durable_file.h"
#include "core/env.h"
#include "fleetsim/calibration.h"
#include "fleetsim/model.h"
#include "fleetsim/report.h"
#include "fleetsim/simulator.h"

namespace {

namespace fs = qp::fleetsim;

int Fail(const qp::Error& e) {
  std::cerr << "quietpatch-fleetsim: " << e.ToString() << "\n";
  return 1;
}

int Run(int argc, char** argv) {
  CLI::App app{"quietpatch-fleetsim: time to protection for large fleets, simulated"};
  std::string bench_dir = "bench", scenario, curves, tsv;
  double devices = 0, seed = -1;
  int threads = 0;
  std::vector<std::string> agents;
  app.add_option("--bench-dir", bench_dir, "where the benchmark results are (calibration)");
  app.add_option("--scenario", scenario, "a scenario TOML file over the defaults");
  app.add_option("--devices", devices, "fleet size (overrides the scenario)")
      ->check(CLI::Range(1.0, 1e9));
  app.add_option("--threads", threads, "worker threads (the result does not depend on it)")
      ->check(CLI::Range(1, 64));
  app.add_option("--seed", seed, "random seed (overrides the scenario)")
      ->check(CLI::Range(0.0, 9e15));
  app.add_option("--agent", agents, "run only this agent model (repeatable)");
  app.add_option("--curves", curves, "write the protected-share curves (gnuplot data) here");
  app.add_option("--tsv", tsv, "write one tab-separated line of figures per run here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  qp::Env* env = qp::Env::Default();
  auto cal = fs::Calibration::Read(env, bench_dir);
  if (!cal.ok()) return Fail(cal.error());
  auto model = fs::DefaultModel(*cal);
  if (!model.ok()) return Fail(model.error());
  if (!scenario.empty()) {
    qp::Status s = fs::LoadScenario(env, scenario, *cal, &*model);
    if (!s.ok()) return Fail(s.error());
  }
  if (devices > 0) model->population.devices = static_cast<std::uint64_t>(devices);
  if (threads > 0) model->threads = threads;
  if (seed >= 0) model->seed = static_cast<std::uint64_t>(seed);
  if (!agents.empty()) {
    std::vector<fs::AgentModel> chosen;
    for (const std::string& name : agents) {
      bool found = false;
      for (const auto& a : model->agents) {
        if (a.name == name) {
          chosen.push_back(a);
          found = true;
        }
      }
      if (!found) {
        std::cerr << "quietpatch-fleetsim: no agent model named \"" << name << "\"; the models:";
        for (const auto& a : model->agents) std::cerr << " \"" << a.name << "\"";
        std::cerr << "\n";
        return 2;
      }
    }
    model->agents = chosen;
  }
  if (qp::Status s = fs::Validate(*model); !s.ok()) return Fail(s.error());

  std::printf("scenario %s: %llu devices, seed %llu, horizon %.0f h, step %.0f ms, %d threads\n",
              model->name.c_str(), static_cast<unsigned long long>(model->population.devices),
              static_cast<unsigned long long>(model->seed), model->horizon_h, model->step_ms,
              model->threads);
  std::fputs(fs::FormatSources(*model).c_str(), stdout);
  std::fflush(stdout);

  fs::Simulator sim(*model);
  std::vector<fs::RunResult> runs;
  for (const fs::AgentModel& a : model->agents) {
    runs.push_back(sim.Run(a));
    const fs::RunResult& r = runs.back();
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    std::printf(
        "ran %-32s %6.1f s wall, %llu events, peak RSS %.0f MB (%.1f bytes/device)\n",
        a.name.c_str(), r.wall_s, static_cast<unsigned long long>(r.events),
        static_cast<double>(u.ru_maxrss) / 1024,
        static_cast<double>(u.ru_maxrss) * 1024 / static_cast<double>(model->population.devices));
    std::fflush(stdout);
  }
  std::fputs(fs::FormatTable(*model, runs).c_str(), stdout);
  if (!curves.empty()) {
    qp::Status s = qp::WriteFileDurably(env, curves, fs::FormatCurves(runs));
    if (!s.ok()) return Fail(s.error());
  }
  if (!tsv.empty()) {
    qp::Status s = qp::WriteFileDurably(env, tsv, fs::FormatTsv(runs));
    if (!s.ok()) return Fail(s.error());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return qp::apps::GuardedMain("quietpatch-fleetsim", Run, argc, argv);
}
