#include "delta/codec.h"

#include <lzma.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "core/memory_file.h"

namespace qp::delta {
namespace {

constexpr std::size_t kInputChunk = 64 * 1024;

int WindowLogFor(std::size_t n, int max_log = kMaxWindowLog) {
  int log = 12;
  while (log < std::min(max_log, kMaxWindowLog) && (std::size_t{1} << log) < n) ++log;
  return log;
}

// Output grows as it is produced: a buffer the size of the input, per candidate, would
// cost more memory than the data itself on large files.
constexpr std::size_t kOutChunk = 1 << 20;

// Streams larger than this choose their codec on a kSample-byte sample (CompressBest).
constexpr std::size_t kSampleAbove = std::size_t{16} << 20;
constexpr std::size_t kSample = std::size_t{4} << 20;
// How many codec candidates compress one large stream at once.
constexpr std::size_t kParallelCandidates = 3;

std::vector<std::uint8_t> CompressZstd(std::span<const std::uint8_t> data, int level, int max_log) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, WindowLogFor(data.size(), max_log));
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
  std::vector<std::uint8_t> out;
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  for (;;) {
    std::size_t used = out.size();
    out.resize(used + kOutChunk);
    ZSTD_outBuffer ob{out.data() + used, kOutChunk, 0};
    std::size_t rc = ZSTD_compressStream2(cctx, &ob, &in, ZSTD_e_end);
    out.resize(used + ob.pos);
    if (ZSTD_isError(rc)) {
      out.clear();
      break;
    }
    if (rc == 0) break;
  }
  ZSTD_freeCCtx(cctx);
  out.shrink_to_fit();
  return out;
}

// With `preset` (the bytes just before `data`, at most the dictionary), the stream starts
// without a dictionary reset: it continues a stream that ended with those bytes.
std::vector<std::uint8_t> CompressLzma2(std::span<const std::uint8_t> data, int lc, int lp, int pb,
                                        bool extreme, int dict_log,
                                        std::span<const std::uint8_t> preset = {}) {
  lzma_options_lzma opt;
  lzma_lzma_preset(&opt, 9 | (extreme ? LZMA_PRESET_EXTREME : 0));
  opt.dict_size = std::uint32_t{1} << dict_log;
  if (!preset.empty()) {
    opt.preset_dict = preset.data();
    opt.preset_dict_size = static_cast<std::uint32_t>(preset.size());
  }
  opt.lc = static_cast<std::uint32_t>(lc);
  opt.lp = static_cast<std::uint32_t>(lp);
  opt.pb = static_cast<std::uint32_t>(pb);
  lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, nullptr}};
  lzma_stream strm = LZMA_STREAM_INIT;
  if (lzma_raw_encoder(&strm, filters) != LZMA_OK) return {};
  std::vector<std::uint8_t> out;
  strm.next_in = data.data();
  strm.avail_in = data.size();
  lzma_ret ret;
  do {
    std::size_t used = out.size();
    out.resize(used + kOutChunk);
    strm.next_out = out.data() + used;
    strm.avail_out = kOutChunk;
    ret = lzma_code(&strm, LZMA_FINISH);
    out.resize(used + kOutChunk - strm.avail_out);
  } while (ret == LZMA_OK);
  lzma_end(&strm);
  if (ret != LZMA_STREAM_END) return {};
  out.shrink_to_fit();
  return out;
}

// CompressLzma2 in `parts` pieces compressed at once and joined into one LZMA2 stream: each
// piece after the first is primed with the dictionary's worth of bytes before it and starts
// without a dictionary reset, so a decoder reads it against those bytes as they were
// decoded; all but the last end marker (a 0 control byte) are dropped. Empty if any piece
// fails.
std::vector<std::uint8_t> CompressLzma2Parts(std::span<const std::uint8_t> data, int parts, int lc,
                                             int lp, int pb, bool extreme, int dict_log) {
  std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(parts));
  std::vector<std::thread> threads;
  auto piece = [&](int i) {
    const std::size_t b =
        data.size() * static_cast<std::size_t>(i) / static_cast<std::size_t>(parts);
    const std::size_t e =
        data.size() * static_cast<std::size_t>(i + 1) / static_cast<std::size_t>(parts);
    const std::size_t from = b - std::min(b, std::size_t{1} << dict_log);
    out[static_cast<std::size_t>(i)] = CompressLzma2(data.subspan(b, e - b), lc, lp, pb, extreme,
                                                     dict_log, data.subspan(from, b - from));
  };
  for (int i = 1; i < parts; ++i) threads.emplace_back(piece, i);
  piece(0);
  for (auto& t : threads) t.join();
  std::vector<std::uint8_t> joined;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i].empty() || out[i].back() != 0) return {};
    joined.insert(joined.end(), out[i].begin(), out[i].end() - (i + 1 < out.size() ? 1 : 0));
  }
  return joined;
}

}  // namespace

EncodedStream CompressBest(std::span<const std::uint8_t> data, const CompressOptions& options) {
  EncodedStream best;
  best.codec = Codec::kRaw;
  if (data.size() <= 64) {
    best.bytes.assign(data.begin(), data.end());
    return best;
  }

  // Candidates run in parallel: zstd and the LZMA2 literal-context settings that suit
  // code-like data (lc=3) and sparse difference bytes (lc=0); and three more that won on
  // AArch64 patches (4-byte words: lp=2; controls and runs: pb=0), which took the arm64
  // corpus 1.1% smaller.
  struct Candidate {
    Codec codec;
    int lc, lp, pb;
    EncodedStream result;
  };
  std::vector<Candidate> cands;
  if (options.try_zstd) cands.push_back({Codec::kZstd, 0, 0, 0, {}});
  if (options.try_lzma) {
    cands.push_back({Codec::kLzma2, 3, 0, 2, {}});
    cands.push_back({Codec::kLzma2, 0, 0, 0, {}});
    cands.push_back({Codec::kLzma2, 0, 2, 2, {}});
    cands.push_back({Codec::kLzma2, 3, 0, 0, {}});
    cands.push_back({Codec::kLzma2, 1, 0, 0, {}});
  }
  auto run = [&](Candidate& c, std::span<const std::uint8_t> input) {
    c.result.codec = c.codec;
    if (c.codec == Codec::kZstd) {
      c.result.bytes = CompressZstd(input, options.zstd_level, options.max_window_log);
    } else {
      const int dict_log = WindowLogFor(input.size(), options.max_window_log);
      c.result.bytes = input.size() > options.parallel_above && options.threads > 1
                           ? CompressLzma2Parts(input, options.threads, c.lc, c.lp, c.pb,
                                                options.lzma_extreme, dict_log)
                           : CompressLzma2(input, c.lc, c.lp, c.pb, options.lzma_extreme, dict_log);
      c.result.params = {static_cast<std::uint8_t>((c.pb * 5 + c.lp) * 9 + c.lc),
                         static_cast<std::uint8_t>(dict_log)};
    }
  };
  auto run_all = [&](std::span<const std::uint8_t> input) {
    if (input.size() > (1u << 20) && cands.size() > 1) {
      // At most kParallelCandidates at once: an LZMA2 encoder holds about ten times its
      // dictionary, and six at once took libnode's arm64 diff from 343 to 422 MB.
      std::atomic<std::size_t> next{0};
      auto worker = [&] {
        for (std::size_t i; (i = next.fetch_add(1)) < cands.size();) run(cands[i], input);
      };
      std::vector<std::thread> threads;
      for (std::size_t t = 1; t < std::min(kParallelCandidates, cands.size()); ++t) {
        threads.emplace_back(worker);
      }
      worker();
      for (auto& t : threads) t.join();
    } else {
      for (auto& c : cands) run(c, input);
    }
  };
  if (data.size() > kSampleAbove && cands.size() > 1) {
    // A large stream (a browser engine's literals run to tens of megabytes): the candidates
    // race on a sample from its middle, and only the winner compresses the whole. Every
    // candidate on every byte took three times as long for a fraction of a percent.
    run_all(data.subspan(data.size() / 2 - kSample / 2, kSample));
    auto won = std::min_element(cands.begin(), cands.end(), [](const auto& a, const auto& b) {
      return a.result.bytes.size() + (a.result.bytes.empty() ? SIZE_MAX / 2 : 0) <
             b.result.bytes.size() + (b.result.bytes.empty() ? SIZE_MAX / 2 : 0);
    });
    Candidate winner = *won;
    winner.result = {};
    cands = {winner};
  }
  run_all(data);
  // Raw is the candidate to beat; it is copied only if nothing beats it.
  std::size_t best_size = data.size();
  Candidate* winner = nullptr;
  for (auto& c : cands) {
    std::size_t size = c.result.bytes.size() + c.result.params.size();
    if (!c.result.bytes.empty() && size < best_size) {
      best_size = size;
      winner = &c;
    }
  }
  if (winner != nullptr) return std::move(winner->result);
  best.bytes.assign(data.begin(), data.end());
  return best;
}

namespace {

// Pulls compressed input in chunks from [offset, offset + comp_len) of the source.
class InputWindow {
 public:
  InputWindow(RandomAccessFile* src, std::uint64_t offset, std::uint64_t len)
      : src_(src),
        next_(offset),
        left_(len),
        buf_(static_cast<std::size_t>(
            std::min<std::uint64_t>(std::max<std::uint64_t>(len, 1), kInputChunk))) {}

  // Refills when empty. Returns false at the end of the stream's input.
  Result<bool> Fill() {
    if (pos_ < size_) return true;
    if (left_ == 0) return false;
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left_, buf_.size()));
    QP_ASSIGN_OR_RETURN(std::size_t n, src_->ReadAt(next_, std::span(buf_.data(), want)));
    if (n != want) return Error(ErrorCode::kCorrupt, "patch file ends inside a stream");
    next_ += n;
    left_ -= n;
    pos_ = 0;
    size_ = n;
    return true;
  }
  const std::uint8_t* data() const { return buf_.data() + pos_; }
  std::size_t available() const { return size_ - pos_; }
  void Consume(std::size_t n) { pos_ += n; }
  bool exhausted() const { return pos_ == size_ && left_ == 0; }

 private:
  RandomAccessFile* src_;
  std::uint64_t next_;
  std::uint64_t left_;
  std::vector<std::uint8_t> buf_;
  std::size_t pos_ = 0, size_ = 0;
};

Error StreamError(const char* name, const std::string& what) {
  return Error(ErrorCode::kCorrupt, std::string(name) + " stream: " + what);
}

class RawDecoder final : public StreamDecoder {
 public:
  RawDecoder(RandomAccessFile* src, std::uint64_t offset, std::uint64_t raw_len, const char* name)
      : in_(src, offset, raw_len), left_(raw_len), name_(name) {}
  Status Read(std::span<std::uint8_t> out) override {
    if (out.size() > left_) return StreamError(name_, "reads past its declared length");
    std::size_t done = 0;
    while (done < out.size()) {
      QP_ASSIGN_OR_RETURN(bool more, in_.Fill());
      if (!more) return StreamError(name_, "ends early");
      std::size_t n = std::min(in_.available(), out.size() - done);
      std::memcpy(out.data() + done, in_.data(), n);
      in_.Consume(n);
      done += n;
    }
    left_ -= out.size();
    return OkStatus();
  }
  Status Finish() override {
    if (left_ != 0) return StreamError(name_, std::to_string(left_) + " bytes left unread");
    return OkStatus();
  }

 private:
  InputWindow in_;
  std::uint64_t left_;
  const char* name_;
};

class ZstdDecoder final : public StreamDecoder {
 public:
  ZstdDecoder(RandomAccessFile* src, std::uint64_t offset, std::uint64_t comp_len,
              std::uint64_t raw_len, const char* name)
      : in_(src, offset, comp_len), left_(raw_len), name_(name) {
    ds_ = ZSTD_createDStream();
    ZSTD_DCtx_setParameter(ds_, ZSTD_d_windowLogMax, kMaxWindowLog);
  }
  ~ZstdDecoder() override { ZSTD_freeDStream(ds_); }

  Status Read(std::span<std::uint8_t> out) override {
    if (out.size() > left_) return StreamError(name_, "reads past its declared length");
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    while (ob.pos < ob.size) {
      QP_ASSIGN_OR_RETURN(bool more, in_.Fill());
      (void)more;
      ZSTD_inBuffer ib{in_.data(), in_.available(), 0};
      std::size_t before = ob.pos;
      std::size_t rc = ZSTD_decompressStream(ds_, &ob, &ib);
      if (ZSTD_isError(rc)) return StreamError(name_, ZSTD_getErrorName(rc));
      in_.Consume(ib.pos);
      frame_done_ = rc == 0;
      if (ib.pos == 0 && ob.pos == before) return StreamError(name_, "ends early");
    }
    left_ -= out.size();
    return OkStatus();
  }
  Status Finish() override {
    if (left_ != 0) return StreamError(name_, std::to_string(left_) + " bytes left unread");
    // The frame must end exactly here: no more output, and no input left over.
    if (frame_done_) {
      QP_ASSIGN_OR_RETURN(bool more, in_.Fill());
      if (more) return StreamError(name_, "trailing bytes after frame");
      return OkStatus();
    }
    std::uint8_t extra;
    for (;;) {
      QP_ASSIGN_OR_RETURN(bool more, in_.Fill());
      (void)more;
      ZSTD_outBuffer ob{&extra, 1, 0};
      ZSTD_inBuffer ib{in_.data(), in_.available(), 0};
      std::size_t rc = ZSTD_decompressStream(ds_, &ob, &ib);
      if (ZSTD_isError(rc)) return StreamError(name_, ZSTD_getErrorName(rc));
      in_.Consume(ib.pos);
      if (ob.pos != 0) return StreamError(name_, "longer than its declared length");
      if (rc == 0) {
        if (!in_.exhausted()) return StreamError(name_, "trailing bytes after frame");
        return OkStatus();
      }
      if (ib.pos == 0) return StreamError(name_, "truncated frame");
    }
  }

 private:
  InputWindow in_;
  std::uint64_t left_;
  const char* name_;
  ZSTD_DStream* ds_;
  bool frame_done_ = false;
};

class Lzma2Decoder final : public StreamDecoder {
 public:
  Lzma2Decoder(RandomAccessFile* src, std::uint64_t offset, std::uint64_t comp_len,
               std::uint64_t raw_len, const char* name)
      : in_(src, offset, comp_len), left_(raw_len), name_(name) {}
  ~Lzma2Decoder() override { lzma_end(&strm_); }

  Status Init(std::span<const std::uint8_t> params) {
    if (params.size() != 2) return StreamError(name_, "bad LZMA2 parameters");
    int props = params[0];
    int dict_log = params[1];
    if (props >= 9 * 5 * 5 || dict_log < 12 || dict_log > kMaxWindowLog) {
      return StreamError(name_, "unsupported LZMA2 parameters");
    }
    lzma_lzma_preset(&opt_, 6);
    opt_.lc = static_cast<std::uint32_t>(props % 9);
    opt_.lp = static_cast<std::uint32_t>((props / 9) % 5);
    opt_.pb = static_cast<std::uint32_t>(props / 45);
    if (opt_.lc + opt_.lp > 4) return StreamError(name_, "unsupported LZMA2 parameters");
    opt_.dict_size = std::uint32_t{1} << dict_log;
    lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &opt_}, {LZMA_VLI_UNKNOWN, nullptr}};
    if (lzma_raw_decoder(&strm_, filters) != LZMA_OK) {
      return StreamError(name_, "cannot start LZMA2 decoder");
    }
    return OkStatus();
  }

  Status Read(std::span<std::uint8_t> out) override {
    if (out.size() > left_) return StreamError(name_, "reads past its declared length");
    strm_.next_out = out.data();
    strm_.avail_out = out.size();
    while (strm_.avail_out > 0) {
      QP_ASSIGN_OR_RETURN(bool more, in_.Fill());
      strm_.next_in = in_.data();
      strm_.avail_in = in_.available();
      std::size_t out_before = strm_.avail_out;
      lzma_ret rc = lzma_code(&strm_, more ? LZMA_RUN : LZMA_FINISH);
      std::size_t consumed = in_.available() - strm_.avail_in;
      in_.Consume(consumed);
      if (rc == LZMA_STREAM_END && strm_.avail_out > 0) return StreamError(name_, "ends early");
      if (rc != LZMA_OK && rc != LZMA_STREAM_END) {
        return StreamError(name_, "LZMA2 data error " + std::to_string(rc));
      }
      if (consumed == 0 && strm_.avail_out == out_before) return StreamError(name_, "ends early");
    }
    left_ -= out.size();
    return OkStatus();
  }

  Status Finish() override {
    if (left_ != 0) return StreamError(name_, std::to_string(left_) + " bytes left unread");
    std::uint8_t extra;
    for (int i = 0; i < 64; ++i) {
      QP_ASSIGN_OR_RETURN(bool more, in_.Fill());
      strm_.next_in = in_.data();
      strm_.avail_in = in_.available();
      strm_.next_out = &extra;
      strm_.avail_out = 1;
      lzma_ret rc = lzma_code(&strm_, LZMA_FINISH);
      in_.Consume(in_.available() - strm_.avail_in);
      if (strm_.avail_out == 0) return StreamError(name_, "longer than its declared length");
      if (rc == LZMA_STREAM_END) {
        if (!in_.exhausted()) return StreamError(name_, "trailing bytes after stream");
        return OkStatus();
      }
      if (rc != LZMA_OK) return StreamError(name_, "LZMA2 data error " + std::to_string(rc));
      if (!more) return StreamError(name_, "truncated");
    }
    return StreamError(name_, "does not end");
  }

 private:
  InputWindow in_;
  std::uint64_t left_;
  const char* name_;
  lzma_stream strm_ = LZMA_STREAM_INIT;
  lzma_options_lzma opt_{};
};

}  // namespace

Result<std::unique_ptr<StreamDecoder>> StreamDecoder::Open(
    Codec codec, std::span<const std::uint8_t> params, RandomAccessFile* src, std::uint64_t offset,
    std::uint64_t comp_len, std::uint64_t raw_len, const char* name) {
  switch (codec) {
    case Codec::kRaw:
      if (comp_len != raw_len) return StreamError(name, "raw stream length mismatch");
      return std::unique_ptr<StreamDecoder>(new RawDecoder(src, offset, raw_len, name));
    case Codec::kZstd:
      return std::unique_ptr<StreamDecoder>(new ZstdDecoder(src, offset, comp_len, raw_len, name));
    case Codec::kLzma2: {
      auto d = std::make_unique<Lzma2Decoder>(src, offset, comp_len, raw_len, name);
      QP_RETURN_IF_ERROR(d->Init(params));
      return std::unique_ptr<StreamDecoder>(std::move(d));
    }
  }
  return Error(ErrorCode::kUnsupported, std::string(name) + " stream: unknown codec " +
                                            std::to_string(static_cast<int>(codec)));
}

Result<std::vector<std::uint8_t>> ReadStream(StreamDecoder& dec, std::uint64_t raw_len) {
  constexpr std::size_t kChunk = 64 * 1024;
  std::vector<std::uint8_t> out;
  while (out.size() < raw_len) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, raw_len - out.size()));
    std::size_t at = out.size();
    out.resize(at + n);
    QP_RETURN_IF_ERROR(dec.Read(std::span(out.data() + at, n)));
  }
  QP_RETURN_IF_ERROR(dec.Finish());
  return out;
}

Result<std::vector<std::uint8_t>> DecodeAll(Codec codec, std::span<const std::uint8_t> params,
                                            std::span<const std::uint8_t> comp,
                                            std::uint64_t raw_len, const char* name) {
  MemoryFile src(comp);
  QP_ASSIGN_OR_RETURN(auto dec,
                      StreamDecoder::Open(codec, params, &src, 0, comp.size(), raw_len, name));
  return ReadStream(*dec, raw_len);
}

}  // namespace qp::delta
