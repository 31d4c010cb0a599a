// The one way the command-line tools end: whatever escapes Run() (an exception from a
// library) is printed with the tool's name and becomes exit status 1, never a crash.
#pragma once

#include <exception>
#include <iostream>

namespace qp::apps {

template <typename RunFn>
int GuardedMain(const char* tool, RunFn run, int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << tool << ": " << e.what() << "\n";
  } catch (...) {
    std::cerr << tool << ": unknown error\n";
  }
  return 1;
}

}  // namespace qp::apps
