#include "core/test_data.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/hash.h"
#include "core/test_process.h"

namespace qp {
namespace {

// "libssl3_3.0.17-1~deb12u2_amd64" -> "libssl3 3.0.17-1~deb12u2 (amd64)"
std::string Describe(const std::string& name) {
  std::size_t a = name.find('_'), b = name.rfind('_');
  if (a == std::string::npos || b == a) return name;
  return name.substr(0, a) + " " + name.substr(a + 1, b - a - 1) + " (" + name.substr(b + 1) + ")";
}

std::string PinnedSha256(const std::string& file) {
  std::ifstream sums(TestDebDir() + "/SHA256SUMS");
  std::string line;
  while (std::getline(sums, line)) {
    std::istringstream fields(line);
    std::string digest, listed;
    if (fields >> digest >> listed && listed == file) return digest;
  }
  return "";
}

}  // namespace

std::string TestDebDir() {
  const char* src = std::getenv("QP_SOURCE_DIR");
  return std::string(src ? src : ".") + "/testdata/debs";
}

std::string TestDeb(const std::string& name) {
  const std::string file = name + ".deb", path = TestDebDir() + "/" + file;
  const std::string what = "test data " + Describe(name);
  std::string want = PinnedSha256(file);
  if (want.empty())
    throw std::runtime_error(what + " is not pinned in " + TestDebDir() + "/SHA256SUMS");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(
        what + " is missing: " + path +
        " (the repository carries it; restore it with `git checkout -- testdata/debs`, "
        "or run scripts/testdata.sh, which says how to recover it)");
  }
  Sha256 hasher;
  std::string chunk(1 << 16, '\0');
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    hasher.Update(std::string_view(chunk.data(), static_cast<std::size_t>(in.gcount())));
  }
  std::string got = HexEncode(hasher.Finish());
  if (got != want) {
    throw std::runtime_error(
        what + " at " + path + " has SHA-256 " + got + ", pinned " + want +
        " (altered or truncated; restore it with `git checkout -- testdata/debs`)");
  }
  return path;
}

std::string UnpackTestDeb(const TestDir& dir, const std::string& name) {
  std::string deb = TestDeb(name), out = dir.Sub(name);
  CommandResult r = RunCommand({"dpkg-deb", "-x", deb, out});
  if (r.exit_code != 0) {
    throw std::runtime_error("dpkg-deb -x " + deb + " failed (" + std::to_string(r.exit_code) +
                             "): " + r.output);
  }
  return out;
}

}  // namespace qp
