// The simulator's output: where every parameter came from, the table of results per agent
// model, the protected-share curves for gnuplot, and a tab-separated form for scripts.
#pragma once

#include <string>
#include <vector>

#include "fleetsim/model.h"
#include "fleetsim/simulator.h"

namespace qp::fleetsim {

// "parameter  value  source" lines for every calibrated or overridden figure.
std::string FormatSources(const Model& model);

// The results table: time to 50/90/95/99% and the last device, the share protected
// within an hour, egress, watchers, reports/s, requests/s and instances needed.
std::string FormatTable(const Model& model, const std::vector<RunResult>& runs);

// gnuplot data, tab-separated: a "seconds <agent> <agent> ..." header line, then one row
// per time (log-spaced) with each run's protected share.
std::string FormatCurves(const std::vector<RunResult>& runs);

// One line per run: agent, then name=value pairs (t50_s, t_last_s, ...), tab-separated.
std::string FormatTsv(const std::vector<RunResult>& runs);

// "1.2 s", "14 min", "3.1 h", "2.0 d"; "not reached" for a negative time.
std::string FormatDuration(double seconds);

}  // namespace qp::fleetsim
