#include "server/audit_log.h"

#include <spdlog/spdlog.h>

#include "core/durable_file.h"

namespace qp::server {

using Json = nlohmann::json;

namespace {

constexpr std::size_t kMaxPeersTracked = 100000;

}  // namespace

AuditLog::AuditLog(Env* env, Clock* clock, std::string path, AuditTable* table,
                   std::uint64_t rotate_bytes)
    : env_(env),
      clock_(clock),
      path_(std::move(path)),
      table_(table),
      rotate_bytes_(rotate_bytes) {}

Status AuditLog::AppendLocked(const std::string& line) {
  auto info = env_->Stat(path_);
  if (info.ok() && info->size >= rotate_bytes_) {
    // Renamed aside, never truncated: every record stays on disk, and the newest one is
    // always in the current file.
    std::string aside = path_ + "." + std::to_string(UnixSeconds(clock_->Now())) + "-" +
                        std::to_string(++rotations_);
    QP_RETURN_IF_ERROR(env_->Rename(path_, aside));
    QP_RETURN_IF_ERROR(env_->SyncDir(DirName(path_)));
    spdlog::info("audit log rotated to {}", aside);
  }
  QP_ASSIGN_OR_RETURN(auto file, env_->NewWritableFile(path_, CreateMode::kAppend, 0600));
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(line.data()),
                                      line.size());
  QP_RETURN_IF_ERROR(file->Append(bytes));
  QP_RETURN_IF_ERROR(file->Sync());
  QP_RETURN_IF_ERROR(file->Close());
  bool created = !info.ok() || info->size >= rotate_bytes_;
  return created ? env_->SyncDir(DirName(path_)) : OkStatus();  // the new file's name
}

Status AuditLog::Record(const std::string& action, const std::string& peer, const Json& details,
                        const std::string& result) {
  if (path_.empty() && table_ == nullptr) return OkStatus();
  const std::int64_t now = UnixSeconds(clock_->Now());
  Json line{
      {"time", now}, {"action", action}, {"by", peer}, {"details", details}, {"result", result}};
  Status s = OkStatus();
  if (table_ != nullptr) {
    s = table_->AppendAudit(now, line.dump());
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    s = AppendLocked(line.dump() + "\n");
  }
  if (!s.ok()) spdlog::error("audit log: {}", s.error().ToString());
  return s;
}

void AuditLog::Refused(const std::string& action, const std::string& peer, const std::string& why) {
  std::uint64_t count = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto now = clock_->Monotonic();
    if (refusals_.size() >= kMaxPeersTracked) refusals_.clear();
    auto [it, fresh] = refusals_.try_emplace(peer);
    Refusals& r = it->second;
    ++r.unrecorded;
    if (!fresh && now - r.last < kRefusalWindow) return;
    r.last = now;
    count = r.unrecorded;
    r.unrecorded = 0;
  }
  (void)Record(action, peer, Json{{"refusals", count}}, "refused: " + why);
}

Json AuditLog::Recent() {
  Json out = Json::array();
  if (table_ != nullptr) {
    auto records = table_->RecentAudit(kMaxReadRecords);
    if (!records.ok()) {
      spdlog::error("audit log: {}", records.error().ToString());
      return out;
    }
    for (const auto& text : *records) {
      Json record = Json::parse(text, nullptr, false);
      if (!record.is_discarded()) out.push_back(std::move(record));
    }
    return out;
  }
  if (path_.empty()) return out;
  std::lock_guard<std::mutex> lock(mu_);
  auto file = env_->NewRandomAccessFile(path_);
  if (!file.ok()) return out;
  std::uint64_t size = (*file)->Size();
  std::uint64_t from = size > kMaxReadBytes ? size - kMaxReadBytes : 0;
  std::string text(static_cast<std::size_t>(size - from), '\0');
  auto n =
      (*file)->ReadAt(from, std::span(reinterpret_cast<std::uint8_t*>(text.data()), text.size()));
  if (!n.ok()) return out;
  text.resize(*n);
  std::size_t pos = from > 0 ? text.find('\n') + 1 : 0;  // skip a cut first line
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // a record is whole once its newline is written
    Json record = Json::parse(text.substr(pos, nl - pos), nullptr, false);
    if (!record.is_discarded()) out.push_back(std::move(record));
    pos = nl + 1;
  }
  return out;
}

}  // namespace qp::server
