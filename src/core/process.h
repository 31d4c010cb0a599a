// Running another program, the one way quietpatch does it: argv executed directly (no
// shell), in its own process group, standard input from memory (whole, or fed in pieces
// by RunningProcess) or /dev/null, output captured with a bound, and a timeout after
// which the whole group is killed. Used for health checks, hooks and base-version queries
// (store), GNU gzip (delta's gzip records) and the tests' child processes. Thread-safe:
// each call is independent.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace qp {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0]: absolute, or looked up in PATH
  // "NAME=value": added to this process's environment (replacing a variable of that name),
  // or, with clean_env, the child's whole environment.
  std::vector<std::string> env;
  bool clean_env = false;
  std::span<const std::uint8_t> input;  // written to stdin, which is then closed
  bool capture_stderr = true;           // interleaved with stdout; otherwise /dev/null
  std::chrono::milliseconds timeout{30000};
  std::size_t max_output = 16 * 1024;
  // What happens past max_output: keep the last max_output bytes (for messages), or stop
  // reading, kill the process and report output_overflowed (for output that must be whole).
  enum class Overflow { kKeepTail, kFail } overflow = Overflow::kKeepTail;
};

struct ProcessResult {
  int exit_code = -1;  // exit status; 128 + signal when killed by a signal
  bool timed_out = false;
  bool output_overflowed = false;
  std::string output;

  bool ok() const { return !timed_out && !output_overflowed && exit_code == 0; }
  // "exit status 3: <last line of output>", "killed by signal 9", "timed out", ...
  std::string Describe() const;
};

// Runs the program to its end (or its timeout, measured on `clock`'s monotonic time).
// Fails only when it cannot be started (kNotFound when argv[0] does not exist, kIo
// otherwise); an exit status, a timeout or an overflow is an outcome.
Result<ProcessResult> RunProcess(const ProcessSpec& spec, Clock* clock = Clock::Real());

// A program whose standard input the caller writes in pieces while it runs (Write), then
// closes to collect the outcome (Finish): for input made as the program consumes it, as
// delta's gzip records patch their content straight into gzip -9n. The spec's timeout
// counts from Start, and its output bounds apply; spec.input is not used. A process not
// finished when this is destroyed is killed (its whole group) and reaped.
class RunningProcess {
 public:
  static Result<std::unique_ptr<RunningProcess>> Start(const ProcessSpec& spec,
                                                       Clock* clock = Clock::Real());
  RunningProcess(const RunningProcess&) = delete;
  RunningProcess& operator=(const RunningProcess&) = delete;
  ~RunningProcess();

  // Writes `data` to its standard input, reading its output meanwhile. Input it no longer
  // reads (it closed its input or exited) is dropped: Finish's exit status tells why. Fails
  // once the run is over: timed out (kTimeout) or past a kFail output bound (kTooLarge).
  Status Write(std::span<const std::uint8_t> data);
  // Closes its input, reads the rest of its output and waits for it to exit (or kills it
  // at the deadline). Fails only if its output cannot be read.
  Result<ProcessResult> Finish();

 private:
  friend Result<ProcessResult> RunProcess(const ProcessSpec& spec, Clock* clock);
  RunningProcess(const ProcessSpec& spec, Clock* clock);
  // Start, with standard input from /dev/null when `input` is false.
  static Result<std::unique_ptr<RunningProcess>> StartWith(const ProcessSpec& spec, Clock* clock,
                                                           bool input);
  // Writes `data` (dropping what the program does not read) and, with `to_end`, reads
  // its output until it closes.
  Status Pump(std::span<const std::uint8_t> data, bool to_end);

  Clock* clock_;
  std::chrono::steady_clock::time_point deadline_;
  std::size_t max_output_;
  ProcessSpec::Overflow overflow_;
  int in_ = -1;   // our end of its standard input (a socket: a closed reader is EPIPE)
  int out_ = -1;  // our end of its standard output
  pid_t pid_ = -1;
  bool reaped_ = false;
  ProcessResult result_;
};

// Starts the program in the background, in its own process group, with stdin from
// /dev/null and stdout+stderr appended to `output_path`; returns its pid (the caller
// reaps it). spec.input, timeout and output bounds do not apply.
Result<pid_t> StartProcess(const ProcessSpec& spec, const std::string& output_path);

// The exit code of a waitpid() status as ProcessResult reports it.
int DecodeWaitStatus(int status);

}  // namespace qp
