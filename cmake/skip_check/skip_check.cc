// Cases whose outcome under CTest pins the project's rule: a suite whose setup fails and a
// test that skips both fail; passing and parameterized cases pass.
#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>

class BrokenFixture : public testing::Test {
 protected:
  static void SetUpTestSuite() { throw std::runtime_error("test data missing"); }
};
TEST_F(BrokenFixture, FailsWhenItsSuiteSetupFails) {}

TEST(Skipping, FailsWhenItSkips) { GTEST_SKIP() << "a skip is a failure here"; }

TEST(Plain, PassesWithItsEnvironment) { EXPECT_NE(std::getenv("QP_SKIP_CHECK"), nullptr); }

class Param : public testing::TestWithParam<int> {};
TEST_P(Param, Passes) { EXPECT_GT(GetParam(), 0); }
INSTANTIATE_TEST_SUITE_P(Values, Param, testing::Values(1, 2));
