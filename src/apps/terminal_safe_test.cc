#include "apps/terminal_safe.h"

#include <gtest/gtest.h>

#include <sstream>

namespace qp::apps {
namespace {

TEST(TerminalSafeTest, ControlCharactersFromElsewhereAreShownNotObeyed) {
  std::ostringstream out;
  {
    TerminalSafeStream safe(out);
    out << "label (a\x1b]0;pwned\x07)\r\tok\n" << std::string("nul\0end", 7) << "\x7f\n";
  }
  EXPECT_EQ(out.str(), "label (a\\x1b]0;pwned\\x07)\\x0d\tok\nnul\\x00end\\x7f\n");
  out << "\x1b";  // restored: no longer filtered
  EXPECT_EQ(out.str().back(), '\x1b');
}

}  // namespace
}  // namespace qp::apps
