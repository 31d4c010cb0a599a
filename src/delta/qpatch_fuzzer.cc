// Fuzzes the patch decoder and the tree applier: the input is a .qpatch, applied to a small
// fixed old tree. Every input must give an error or a verified tree, never a crash, a read
// out of bounds, or anything written outside the output directory.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/env.h"
#include "core/memory_file.h"
#include "delta/file_delta.h"
#include "delta/tree_patch.h"

namespace {

std::string g_root;

void WriteFile(const std::string& path, const std::string& data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) abort();
  std::fwrite(data.data(), 1, data.size(), f);
  std::fclose(f);
}

void Setup() {
  char templ[] = "/tmp/qp-fuzz-XXXXXX";
  if (::mkdtemp(templ) == nullptr) abort();
  g_root = templ;
  qp::Env* env = qp::Env::Default();
  (void)env->MakeDir(g_root + "/old", 0755);
  (void)env->MakeDir(g_root + "/old/lib", 0755);
  std::string lib(4096, '\0');
  for (std::size_t i = 0; i < lib.size(); ++i) lib[i] = static_cast<char>(i * 7 + i / 13);
  WriteFile(g_root + "/old/lib/libfoo.so.1", lib);
  WriteFile(g_root + "/old/README", "hello\n");
  (void)env->Symlink("libfoo.so.1", g_root + "/old/lib/libfoo.so");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (g_root.empty()) Setup();
  qp::Env* env = qp::Env::Default();
  // The header decoder and the raw file-delta applier, straight from memory.
  qp::MemoryFile patch(std::span<const std::uint8_t>(data, size));
  (void)qp::delta::DecodePatchHeader(patch);
  static const std::uint8_t kOld[64] = {1, 2, 3, 4, 5, 6, 7, 8};
  (void)qp::delta::ApplyFileDeltaToMemory(kOld, std::span<const std::uint8_t>(data, size));
  // The whole tree applier, through the file system.
  std::string patch_path = g_root + "/in.qpatch";
  WriteFile(patch_path, std::string(reinterpret_cast<const char*>(data), size));
  std::string out = g_root + "/out";
  qp::Status s = qp::delta::ApplyPatch(env, g_root + "/old", patch_path, out, {});
  if (s.ok()) (void)qp::delta::RemoveTree(env, out);
  auto names = env->ListDir(g_root);
  if (!names.ok() || names->size() != 2) abort();  // only old/ and in.qpatch may remain
  return 0;
}
