// Output to a terminal of text that came from elsewhere (a repository's labels and CVE
// lists, a server's errors, file names): control characters other than newline and tab
// are written as \xNN, so that escape sequences cannot move the cursor, retitle the
// window or hide a line. Installed on a stream with TerminalSafeStream.
#pragma once

#include <cstdio>
#include <ostream>
#include <streambuf>

namespace qp::apps {

class TerminalSafeBuf final : public std::streambuf {
 public:
  explicit TerminalSafeBuf(std::streambuf* out) : out_(out) {}

 protected:
  int_type overflow(int_type ch) override {
    if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
    auto c = static_cast<unsigned char>(traits_type::to_char_type(ch));
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
      return out_->sputn(escaped, 4) == 4 ? ch : traits_type::eof();
    }
    return out_->sputc(static_cast<char>(c)) == traits_type::eof() ? traits_type::eof() : ch;
  }
  int sync() override { return out_->pubsync(); }

 private:
  std::streambuf* out_;
};

// Filters `stream` for its lifetime.
class TerminalSafeStream {
 public:
  explicit TerminalSafeStream(std::ostream& stream)
      : stream_(stream), buf_(stream.rdbuf()), saved_(stream.rdbuf(&buf_)) {}
  ~TerminalSafeStream() {
    stream_.flush();
    stream_.rdbuf(saved_);
  }
  TerminalSafeStream(const TerminalSafeStream&) = delete;
  TerminalSafeStream& operator=(const TerminalSafeStream&) = delete;

 private:
  std::ostream& stream_;
  TerminalSafeBuf buf_;
  std::streambuf* saved_;
};

}  // namespace qp::apps
