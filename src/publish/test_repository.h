// Test helper: a signed repository with one small published improvement, the fixture of the
// server's and the fleet's tests.
#pragma once

#include "core/clock.h"
#include "core/test_dir.h"
#include "publish/publisher.h"

namespace qp::publish {

// InitRepository at `paths`, then improvement comp/1.0/a (linux-x86_64) changing one file
// ("zero" in dir/v0/file to "one!" in dir/v1/file), built into dir/imp-a and published at
// 100%.
Status MakeTestRepository(const TestDir& dir, const RepoPaths& paths, Clock* clock = Clock::Real());

}  // namespace qp::publish
