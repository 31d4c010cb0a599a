// The agent's collaborators on the network, injected so that each piece of the agent is
// tested without sockets (HttpTransport is the real one, over net::HttpFetcher):
//   - a TUF fetcher for metadata and small signed targets (rollout.json);
//   - a resumable downloader for patches, writing through Env;
//   - a sender for the device's signed requests (reports, enrollment);
//   - a watch client (long-poll; it has a connection of its own, because a watch runs
//     while a person's command may check);
//   - a probe: a conditional GET of timestamp.json, so that a check with nothing new is one
//     request answered 304.
// Nothing that comes back is trusted: metadata is verified by TUF, patches against their
// signed length and hashes, answers are capped.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/result.h"
#include "tuf/fetcher.h"

namespace qp::agent {

struct HttpAnswer {
  long status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header, if any
  std::string etag;         // the ETag header, if any
};

class Downloader {
 public:
  virtual ~Downloader() = default;
  // Downloads `url` into `partial_path`, resuming from the bytes already there; kTooLarge
  // past `max_length`. Returns the file's size once the server has sent everything. The
  // content is not trusted: the caller verifies the whole file.
  virtual Result<std::uint64_t> Download(Env* env, const std::string& url,
                                         const std::string& partial_path,
                                         std::uint64_t max_length) = 0;
};

class ReportSender {
 public:
  virtual ~ReportSender() = default;
  // POSTs JSON with extra header lines ("QP-Signature: ..."); kIo when no HTTP answer
  // arrived.
  virtual Result<HttpAnswer> Send(const std::string& url, const std::string& body,
                                  const std::vector<std::string>& headers) = 0;
};

class WatchClient {
 public:
  virtual ~WatchClient() = default;
  // GET of a long-poll URL with extra header lines (the device's signature), abandoned
  // after `timeout_seconds` or within a second of `cancel` becoming true (kIo "cancelled").
  // `waiting` is called once if the server holds the answer (about a second after the
  // request went), never if the answer comes at once.
  virtual Result<HttpAnswer> Watch(const std::string& url, const std::vector<std::string>& headers,
                                   long timeout_seconds, const std::atomic<bool>* cancel,
                                   std::function<void()> waiting) = 0;
};

class MetadataProbe {
 public:
  virtual ~MetadataProbe() = default;
  // GET of `url` with If-None-Match: `etag`: 304 when unchanged, else the answer (its body
  // at most a timestamp's size; nothing in it is trusted).
  virtual Result<HttpAnswer> Probe(const std::string& url, const std::string& etag) = 0;
  // The ETag that came with the last fetch of `url` by the metadata fetcher ("" if none):
  // the version of timestamp.json a full check verified, for the next probe.
  virtual std::string FetchedEtag(const std::string& url) = 0;
};

struct Transport {
  tuf::Fetcher* metadata = nullptr;
  Downloader* downloads = nullptr;
  ReportSender* reports = nullptr;
  WatchClient* watch = nullptr;
  MetadataProbe* probe = nullptr;  // null: every check refreshes the metadata
};

}  // namespace qp::agent
