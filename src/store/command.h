// Running a configured command (health check, base-version query, restart hook) through
// core's process runner: argv executed directly (no shell), in its own process group, with
// a timeout after which the whole group is killed, and its output captured (the last 16 KiB)
// for error messages.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/process.h"
#include "core/result.h"

namespace qp::store {

// exit_code, timed_out, output (stdout+stderr, at most the last kMaxCommandOutput bytes);
// Describe() gives "exit status 3: <last line of output>", "timed out", ...
using CommandOutcome = ProcessResult;

inline constexpr std::size_t kMaxCommandOutput = 16 * 1024;

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
