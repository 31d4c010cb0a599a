// Test helpers for end-to-end tests: run a command to completion, or keep a server process
// running in the background for the length of a test.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace qp {

struct CommandResult {
  int exit_code = -1;  // the exit status, or 128 + signal when killed by a signal
  std::string output;  // stdout and stderr interleaved
};

// Runs argv[0] (looked up in PATH) with `extra_env` ("NAME=value") added to the
// environment, waits for it and returns its exit status and output.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env = {});

// A child process with its stdout+stderr in a file; killed (SIGTERM, then SIGKILL) and
// reaped on destruction.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv,
                             const std::vector<std::string>& extra_env = {});
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Everything the process printed so far.
  std::string Output() const;
  // Waits up to `timeout_ms` for `needle` to appear in the output; returns the output
  // then, or "" on timeout.
  std::string WaitForOutput(const std::string& needle, int timeout_ms) const;
  // Sends `signal` and waits for the process; returns its exit status as RunCommand does.
  int Stop(int signal);

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
  int status_ = -1;
};

}  // namespace qp
