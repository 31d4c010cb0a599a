#include "core/durable_file.h"

#include <unistd.h>

#include <atomic>

namespace qp {
namespace {

std::string TempPathFor(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".qp-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

Status WriteAll(Env* env, const std::string& path, std::span<const std::uint8_t> data,
                CreateMode mode, mode_t permissions) {
  QP_ASSIGN_OR_RETURN(auto file, env->NewWritableFile(path, mode, permissions));
  Status s = file->Append(data);
  if (s.ok()) s = file->Sync();
  Status c = file->Close();
  if (!s.ok()) return s;
  return c;
}

}  // namespace

Status WriteFileDurably(Env* env, const std::string& path, std::span<const std::uint8_t> data,
                        mode_t permissions) {
  std::string tmp = TempPathFor(path);
  Status s = WriteAll(env, tmp, data, CreateMode::kExclusive, permissions);
  if (s.ok()) s = env->Rename(tmp, path);
  if (!s.ok()) {
    if (s.error().code() != ErrorCode::kCrashed) (void)env->Unlink(tmp);
    return s.error().WithContext("durable write of " + path);
  }
  Status d = env->SyncDir(DirName(path));
  if (!d.ok()) return d.error().WithContext("durable write of " + path);
  return OkStatus();
}

Status WriteFileDurably(Env* env, const std::string& path, std::string_view data,
                        mode_t permissions) {
  return WriteFileDurably(env, path,
                          std::span<const std::uint8_t>(
                              reinterpret_cast<const std::uint8_t*>(data.data()), data.size()),
                          permissions);
}

Status RenameDurably(Env* env, const std::string& from, const std::string& to) {
  QP_RETURN_IF_ERROR(env->Rename(from, to));
  QP_RETURN_IF_ERROR(env->SyncDir(DirName(to)));
  if (DirName(from) != DirName(to)) QP_RETURN_IF_ERROR(env->SyncDir(DirName(from)));
  return OkStatus();
}

Status CreateFileExclusively(Env* env, const std::string& path, std::span<const std::uint8_t> data,
                             mode_t permissions) {
  Status s = WriteAll(env, path, data, CreateMode::kExclusive, permissions);
  if (!s.ok()) {
    if (s.error().code() != ErrorCode::kAlreadyExists && s.error().code() != ErrorCode::kCrashed) {
      (void)env->Unlink(path);
    }
    return s;
  }
  return env->SyncDir(DirName(path));
}

Result<std::vector<std::uint8_t>> ReadFileLimited(Env* env, const std::string& path,
                                                  std::uint64_t max_bytes) {
  QP_ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
  std::uint64_t size = file->Size();
  if (size > max_bytes) {
    return Error(ErrorCode::kTooLarge, "read " + path + ": " + std::to_string(size) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(max_bytes));
  }
  std::vector<std::uint8_t> data(size);
  QP_ASSIGN_OR_RETURN(std::size_t n, file->ReadAt(0, data));
  data.resize(n);
  return data;
}

Status MakeDirs(Env* env, const std::string& path, mode_t permissions) {
  auto info = env->Stat(path);
  if (info.ok()) {
    if (info->type == FileType::kDirectory) return OkStatus();
    return Error(ErrorCode::kAlreadyExists, "mkdir " + path + ": exists and is not a directory");
  }
  std::string parent = DirName(path);
  if (parent != path && parent != "." && parent != "/") {
    QP_RETURN_IF_ERROR(MakeDirs(env, parent, permissions));
  }
  Status s = env->MakeDir(path, permissions);
  if (!s.ok() && s.error().code() != ErrorCode::kAlreadyExists) return s;
  return OkStatus();
}

}  // namespace qp
