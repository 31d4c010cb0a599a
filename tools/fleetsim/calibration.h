// Calibration: the figures the project's own benchmarks measured, read from their outputs
// (bench/*_results.txt) rather than typed in, each with the file and line it came from.
// The newest line of a kind wins (result files append a dated block per run).
//
//   agent.loopback_install_cpu_s / server.loopback_install_cpu_s   CPU of one install of
//                                the demo's fix, in the agent and in the server (agent_bench)
//   server.requests_per_s        timestamp.json at 64 connections (server_bench)
//   server.reports_per_s.postgresql / .sqlite   reports stored per second (server_bench)
//   server.watcher_kb            server memory per idle watcher (server_bench)
//   server.fanout_s_per_watcher  publish-to-all-answered time / watchers (server_bench)
//   store.install_s:<case>       install wall time (store_bench; <case> as it prints it)
//   store.install_cpu_s:<case>   install CPU time (store_bench)
//   delta.tree_bytes:<pair>      package-tree patch bytes (delta_bench, "libssl3 3.0.20 -> 3.0.22")
//   delta.full_deb_bytes:<pair>  the new full .deb's bytes (delta_bench)
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/env.h"
#include "core/result.h"

namespace qp::fleetsim {

// A number and where it came from ("bench/server_bench_results.txt:5: <the line>",
// "scenario demo.toml", "default: <why>").
struct Param {
  double value = 0;
  std::string source;
};

class Calibration {
 public:
  // Reads the result files in `bench_dir` (agent_bench, server_bench, store_bench and
  // delta_bench _results.txt). A missing file is an error: the simulator does not run on
  // typed-in costs.
  static Result<Calibration> Read(Env* env, const std::string& bench_dir);

  // Parses one result file's text; `name` is how sources cite it. Figures it holds replace
  // earlier ones of the same key. Lines it does not know (or over 2 KB) are skipped.
  void Parse(std::string_view name, std::string_view text);

  // kNotFound naming the key when no result file held it.
  Result<Param> Get(const std::string& key) const;
  void Set(const std::string& key, Param value) { figures_[key] = std::move(value); }
  const std::map<std::string, Param>& figures() const { return figures_; }

 private:
  std::map<std::string, Param> figures_;
};

}  // namespace qp::fleetsim
