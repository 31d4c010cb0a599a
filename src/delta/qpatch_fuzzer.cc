// Fuzzes the patch decoder and the tree applier: the input is a .qpatch, applied to a small
// fixed old tree. Every input must give an error or a verified tree, never a crash, a read
// out of bounds, or anything written outside the output directory.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/env.h"
#include "core/memory_file.h"
#include "delta/file_delta.h"
#include "delta/gzip_member.h"
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
  // An x86-64 ELF (header, one PT_LOAD, calls and RIP-relative loads) for transform 2, its
  // AArch64 twin for transform 4, and
  // a gzip -9n file for gzip-delta records. src/delta/fuzz_corpus/make_qpatch_seeds.py
  // builds the same tree to make the seeds.
  std::string bar(8192, '\0');
  for (std::size_t i = 0; i < bar.size(); ++i) bar[i] = static_cast<char>(i * 13 + i / 7);
  std::fill(bar.begin(), bar.begin() + 120, '\0');
  auto put = [&](std::size_t at, std::uint64_t v, int bytes) {
    for (int k = 0; k < bytes; ++k)
      bar[at + static_cast<std::size_t>(k)] = static_cast<char>(v >> (8 * k));
  };
  put(0, 0x464c457f, 4);
  put(4, 0x010102, 3);
  put(18, 62, 2);
  put(0x20, 64, 8);
  put(0x36, 56, 2);
  put(0x38, 1, 2);
  put(64, 1, 4);
  put(68, 5, 4);
  put(96, bar.size(), 8);
  put(104, bar.size(), 8);
  for (std::size_t k = 0; k < 60; ++k) {
    std::size_t at = 256 + k * 97;
    put(at, 0xE8, 1);
    put(at + 1, static_cast<std::uint32_t>(4096 + k * 61 - (at + 5)), 4);
    put(at + 40, 0x058d48, 3);
    put(at + 43, static_cast<std::uint32_t>(6000 + k * 8 - (at + 47)), 4);
  }
  WriteFile(g_root + "/old/lib/libbar.so", bar);
  // The same bytes as an AArch64 ELF (e_machine 183) for transform 4: its words are read as
  // instructions, some of which are branches and ADRP pairs.
  put(18, 183, 2);
  WriteFile(g_root + "/old/lib/libbaz.so", bar);
  (void)env->MakeDir(g_root + "/old/doc", 0755);
  std::string text;
  for (int k = 0; k < 200; ++k)
    text += "entry " + std::to_string(k) + ": fixed a bug in the parser\n";
  auto gz = qp::delta::GzipBest(
      std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  if (gz.ok()) WriteFile(g_root + "/old/doc/changelog.gz", std::string(gz->begin(), gz->end()));
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
  if (s.ok()) (void)qp::RemoveTree(env, out);
  auto names = env->ListDir(g_root);
  if (!names.ok() || names->size() != 2) abort();  // only old/ and in.qpatch may remain
  return 0;
}
