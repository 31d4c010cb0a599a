#include "publish/test_repository.h"

#include "core/durable_file.h"

namespace qp::publish {

Status MakeTestRepository(const TestDir& dir, const RepoPaths& paths, Clock* clock) {
  QP_RETURN_IF_ERROR(InitRepository(Env::Default(), clock, paths, {}));
  QP_RETURN_IF_ERROR(MakeDirs(Env::Default(), dir.Sub("v0")));
  QP_RETURN_IF_ERROR(MakeDirs(Env::Default(), dir.Sub("v1")));
  WriteTestFile(dir.Sub("v0/file"), "zero");
  WriteTestFile(dir.Sub("v1/file"), "one!");
  BuildSpec s;
  s.component = "comp";
  s.platform = "linux-x86_64";
  s.base = "1.0";
  s.label = "a";
  s.base_tree = dir.Sub("v0");
  s.new_tree = dir.Sub("v1");
  s.out_dir = dir.Sub("imp-a");
  s.clock = clock;
  QP_RETURN_IF_ERROR(BuildImprovement(Env::Default(), paths, s));
  return PublishImprovement(Env::Default(), clock, paths, s.out_dir, 100);
}

}  // namespace qp::publish
