// Test helper: the project's own real-data corpus, testdata/debs/ (real Debian security
// updates, committed and pinned by SHA-256 in testdata/debs/SHA256SUMS; see
// testdata/README.md). Found through QP_SOURCE_DIR, which CTest sets for every test.
#pragma once

#include <string>

#include "core/test_dir.h"

namespace qp {

// $QP_SOURCE_DIR/testdata/debs (the current directory's when QP_SOURCE_DIR is unset).
std::string TestDebDir();

// The path of testdata/debs/<name>.deb (name like "libssl3_3.0.17-1~deb12u2_amd64") after
// checking its SHA-256 against SHA256SUMS. Throws std::runtime_error naming the package and
// version, and what to do about it, when the file is missing, unpinned or altered; gtest
// reports that as a failure of the test (or of every test of a suite whose setup threw).
std::string TestDeb(const std::string& name);

// Unpacks TestDeb(name) with `dpkg-deb -x` into dir/name and returns that path. Throws on
// any failure, as TestDeb does.
std::string UnpackTestDeb(const TestDir& dir, const std::string& name);

}  // namespace qp
