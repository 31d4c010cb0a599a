// Test helper: a fresh temporary directory, removed with everything in it on destruction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qp {

class TestDir {
 public:
  TestDir();
  ~TestDir();
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Test helpers over plain files (not through an Env): write, read, exists.
void WriteTestFile(const std::string& path, const std::string& content);
std::string ReadTestFile(const std::string& path);
bool TestPathExists(const std::string& path);

}  // namespace qp
