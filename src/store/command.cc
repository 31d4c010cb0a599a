#include "store/command.h"

namespace qp::store {

Result<CommandOutcome> RunProcess(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout,
                                  const std::vector<std::string>& extra_env) {
  ProcessSpec spec;
  spec.argv = argv;
  spec.env = extra_env;
  spec.timeout = timeout;
  spec.max_output = kMaxCommandOutput;
  return qp::RunProcess(spec);
}

}  // namespace qp::store
