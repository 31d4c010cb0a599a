// Running a configured command (health check, base-version query, restart hook): argv
// executed directly (no shell), in its own process group, with a timeout after which the
// whole group is killed, and its output captured (bounded) for error messages.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/result.h"

namespace qp::store {

struct CommandOutcome {
  int exit_code = -1;  // exit status; 128 + signal when killed by a signal
  bool timed_out = false;
  std::string output;  // stdout+stderr, at most the last 16 KiB

  bool ok() const { return !timed_out && exit_code == 0; }
  // "exit status 3: <last line of output>", "timed out after 30s", ...
  std::string Describe() const;
};

// Runs `argv` (argv[0] is looked up in PATH) with `extra_env` ("NAME=value") added. Fails
// only when the command cannot be started (kNotFound / kIo); a non-zero exit is an outcome.
Result<CommandOutcome> RunProcess(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout,
                                  const std::vector<std::string>& extra_env = {});

// The seam the store runs commands through (tests substitute their own).
using CommandRunner = std::function<Result<CommandOutcome>(
    const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
    const std::vector<std::string>& extra_env)>;

}  // namespace qp::store
