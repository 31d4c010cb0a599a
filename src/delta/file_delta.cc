// File deltas, the differ's side (see file_delta.h); file_delta_apply.cc is the applier's.
#include "delta/file_delta.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "core/memory_file.h"
#include "delta/byte_io.h"
#include "delta/file_delta_format.h"
#include "delta/suffix_index.h"

namespace qp::delta {
namespace {

struct SparseDiff {
  std::vector<std::uint8_t> gaps, runs, values;
};

// Splits difference bytes, fed in pieces, into the sparse layout's zero-runs, non-zero-runs
// and values. Trailing zeros are implied by the total length and not written.
class SparseSplitter {
 public:
  void Add(std::span<const std::uint8_t> d) {
    std::size_t i = 0;
    const std::size_t n = d.size();
    while (i < n) {
      if (run_ == 0) {
        std::size_t z = i;
        for (std::uint64_t word; z + 8 <= n; z += 8) {
          std::memcpy(&word, d.data() + z, 8);
          if (word != 0) break;
        }
        while (z < n && d[z] == 0) ++z;
        zeros_ += z - i;
        i = z;
        if (i == n) break;
      }
      std::size_t e = i;
      while (e < n && d[e] != 0) ++e;
      values_.insert(values_.end(), d.begin() + static_cast<std::ptrdiff_t>(i),
                     d.begin() + static_cast<std::ptrdiff_t>(e));
      run_ += e - i;
      i = e;
      if (i < n) Close();
    }
  }

  SparseDiff Finish() {
    if (run_ > 0) Close();
    return SparseDiff{gaps_.Take(), runs_.Take(), std::move(values_)};
  }

 private:
  void Close() {
    gaps_.Varint(zeros_);
    runs_.Varint(run_);
    zeros_ = 0;
    run_ = 0;
  }

  ByteWriter gaps_, runs_;
  std::vector<std::uint8_t> values_;
  std::uint64_t zeros_ = 0, run_ = 0;
};

void WriteStreamHeader(ByteWriter& w, const EncodedStream& s, std::uint64_t raw_len) {
  w.U8(static_cast<std::uint8_t>(s.codec));
  w.U8(static_cast<std::uint8_t>(s.params.size()));
  w.Bytes(s.params);
  w.Varint(raw_len);
  w.Varint(s.bytes.size());
}

std::vector<std::uint8_t> EncodeControls(const std::vector<Control>& controls, bool columns) {
  ByteWriter w, adds, copies;
  std::int64_t old_pos = 0;
  for (const Control& c : controls) {
    w.SignedVarint(c.old_pos - old_pos);
    (columns ? adds : w).Varint(c.add);
    (columns ? copies : w).Varint(c.copy);
    old_pos = c.old_pos + static_cast<std::int64_t>(c.add);
  }
  if (columns) {
    w.Bytes(adds.Take());
    w.Bytes(copies.Take());
  }
  return w.Take();
}

// The difference bytes of every control's `add` run against the (predicted) old bytes,
// handed to `out` in pieces of at most kDeltaChunk bytes; chunked exactly as the applier
// chunks, so that both predict (and learn) alike.
Status Differences(std::span<const std::uint8_t> old_data, std::span<const std::uint8_t> new_data,
                   const std::vector<Control>& controls, std::uint8_t transform,
                   std::uint8_t tables,
                   const std::function<void(std::span<const std::uint8_t>)>& out) {
  std::unique_ptr<Predictor> predictor;
  if (transform != kTransformNone) {
    MemoryFile old_file(old_data);
    QP_ASSIGN_OR_RETURN(predictor, Predictor::Create(static_cast<Transform>(transform), old_file,
                                                     controls, tables));
  }
  std::vector<std::uint8_t> region, diff(kDeltaChunk);
  std::uint64_t new_pos = 0;
  for (const Control& c : controls) {
    for (std::uint64_t off = 0; off < c.add; off += kDeltaChunk) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kDeltaChunk, c.add - off));
      const std::uint64_t old_at = static_cast<std::uint64_t>(c.old_pos) + off;
      const std::uint8_t* o = old_data.data() + old_at;
      auto new_bytes = new_data.subspan(static_cast<std::size_t>(new_pos + off), n);
      if (predictor) {
        region.assign(o, o + n);
        QP_RETURN_IF_ERROR(predictor->PredictForDiff(old_at, new_pos + off, region, new_bytes));
        o = region.data();
      }
      std::uint8_t* d = diff.data();
      for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<std::uint8_t>(new_bytes[i] - o[i]);
      out(std::span<const std::uint8_t>(d, n));
    }
    new_pos += c.add + c.copy;
  }
  return OkStatus();
}

// The payload for one set of controls.
Result<std::vector<std::uint8_t>> EncodePayload(std::span<const std::uint8_t> old_data,
                                                std::span<const std::uint8_t> new_data,
                                                const std::vector<Control>& controls,
                                                std::uint8_t transform, std::uint8_t tables,
                                                const CompressOptions& compress, int threads) {
  std::vector<std::uint8_t> diff, extra;
  std::uint64_t add_total = 0, copy_total = 0;
  for (const Control& c : controls) {
    add_total += c.add;
    copy_total += c.copy;
  }
  // The dense form of the differences is tried too where it is affordable (the smaller
  // layout wins); past that, they are only ever held split.
  const bool try_dense = add_total <= (16u << 20);
  if (try_dense) diff.reserve(add_total);
  extra.reserve(copy_total);
  SparseSplitter splitter;
  QP_RETURN_IF_ERROR(Differences(old_data, new_data, controls, transform, tables,
                                 [&](std::span<const std::uint8_t> d) {
                                   splitter.Add(d);
                                   if (try_dense) diff.insert(diff.end(), d.begin(), d.end());
                                 }));
  // Transform 4 stores AArch64 literals with absolute branch and page immediates. Only the
  // old file's segments and code runs are used, which do not depend on the table mask (the
  // applier takes its predictor's layout, read with the payload's mask).
  ElfLayout literal_layout;
  const bool literals = transform == kTransformArm64Frames;
  if (literals) {
    MemoryFile old_file(old_data);
    QP_ASSIGN_OR_RETURN(literal_layout, ElfLayout::Read(old_file, 0, /*code=*/true));
  }
  std::uint64_t new_pos = 0;
  for (const Control& c : controls) {
    new_pos += c.add;
    const std::size_t at = extra.size();
    extra.insert(extra.end(), new_data.begin() + static_cast<std::ptrdiff_t>(new_pos),
                 new_data.begin() + static_cast<std::ptrdiff_t>(new_pos + c.copy));
    if (literals) {
      Arm64Literals(literal_layout, new_pos, std::span(extra).subspan(at), /*to_stored=*/true);
    }
    new_pos += c.copy;
  }

  const bool columns = transform == kTransformArm64Frames;
  std::vector<std::uint8_t> ctrl_raw = EncodeControls(controls, columns);
  SparseDiff sparse = splitter.Finish();
  // Every stream is compressed at once, `threads` at a time, largest first.
  std::vector<const std::vector<std::uint8_t>*> inputs = {&ctrl_raw, &sparse.gaps, &sparse.runs,
                                                          &sparse.values, &extra};
  if (try_dense) inputs.push_back(&diff);
  std::vector<EncodedStream> encoded(inputs.size());
  std::vector<std::size_t> order(inputs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t x, std::size_t y) { return inputs[x]->size() > inputs[y]->size(); });
  std::atomic<std::size_t> next{0};
  // Only the literals gain much from the largest window: the controls, the runs and the
  // difference bytes take half (it costs them next to nothing, and saves an applier 16 MiB:
  // chromium's patch applies within 64 MiB with prediction because of it).
  // A large stream may take every core for itself once the others are done (chromium's
  // literals are 92 MB, the other streams together 33).
  CompressOptions literal = compress;
  literal.threads = threads;
  CompressOptions others = literal;
  others.max_window_log = std::min(compress.max_window_log, kMaxWindowLog - 1);
  auto work = [&] {
    for (std::size_t k; (k = next.fetch_add(1)) < order.size();) {
      const std::size_t i = order[k];
      encoded[i] = CompressBest(*inputs[i], i == 4 ? literal : others);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(threads, 1); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  std::uint8_t layout = kLayoutSparse;
  std::vector<std::pair<EncodedStream, std::uint64_t>> streams;
  streams.emplace_back(std::move(encoded[0]), ctrl_raw.size());
  std::size_t sparse_size = 0;
  for (std::size_t i = 1; i <= 3; ++i) sparse_size += encoded[i].bytes.size() + 12;
  if (try_dense && encoded[5].bytes.size() + 4 < sparse_size) {
    layout = kLayoutDense;
    streams.emplace_back(std::move(encoded[5]), add_total);
  } else {
    for (std::size_t i = 1; i <= 3; ++i)
      streams.emplace_back(std::move(encoded[i]), inputs[i]->size());
  }
  streams.emplace_back(std::move(encoded[4]), extra.size());

  ByteWriter w;
  w.U8(transform);
  if (HasTableMask(transform)) w.U8(tables);
  w.Varint(old_data.size());
  w.Varint(new_data.size());
  w.Varint(controls.size());
  w.U8(static_cast<std::uint8_t>(layout | (columns ? kLayoutColumns : 0)));
  w.Varint(add_total);
  for (const auto& [stream, raw_len] : streams) WriteStreamHeader(w, stream, raw_len);
  for (const auto& st : streams) w.Bytes(st.first.bytes);
  return w.Take();
}

// New files this large are matched with their code normalized only (DiffFile).
constexpr std::size_t kNormalizedOnly = std::size_t{64} << 20;
// x86-64 files are matched normalized too from this size (libnode.so.108, 47 MB: 3.5%
// smaller); below it, the corpus's libraries gained nothing and took twice as long.
constexpr std::size_t kNormalizedX86 = std::size_t{16} << 20;

// True when every block the predictor would use lies where it lay (old offset = new offset).
bool NothingMoved(const std::vector<Control>& controls) {
  std::uint64_t new_pos = 0;
  for (const Control& c : controls) {
    if (c.add >= Predictor::kMinBlock && static_cast<std::uint64_t>(c.old_pos) != new_pos) {
      return false;
    }
    new_pos += c.add + c.copy;
  }
  return true;
}

// Code is matched a second time as if its references had not moved (the predictor moves
// them): whole functions then match where their calls and addresses changed (AArch64
// libnode's patch is a quarter smaller, x86-64 chromium's 8.5%), but lookalike functions
// can be matched to each other (AArch64 libcrypto's is a few percent larger). The smaller
// payload wins.
Result<std::vector<std::uint8_t>> SmallerWithNormalizedMatching(
    std::span<const std::uint8_t> old_data, std::span<const std::uint8_t> new_data,
    NormalizeFn normalize, std::vector<std::uint8_t> payload, std::uint8_t transform,
    std::uint8_t tables, std::span<const FunctionPair> pairs, const FileDiffOptions& options) {
  const std::vector<Control> controls =
      MatchFiles(old_data, new_data, options.threads, options.progress, pairs, normalize);
  QP_ASSIGN_OR_RETURN(std::vector<std::uint8_t> normalized,
                      EncodePayload(old_data, new_data, controls, transform, tables,
                                    options.compress, options.threads));
  if (normalized.size() < payload.size()) return normalized;
  return payload;
}

// What applying `payload` will need (ApplyMemoryNeeded), its blocks counted from its controls.
Result<std::uint64_t> ApplyMemoryOf(std::span<const std::uint8_t> payload) {
  MemoryFile file(payload);
  QP_ASSIGN_OR_RETURN(FileDeltaHeader h, ReadFileDeltaHeader(file, 0, payload.size()));
  std::uint64_t blocks = 0;
  if (h.transform != kTransformNone) {
    const FileDeltaHeader::Stream& st = h.streams.front();
    QP_ASSIGN_OR_RETURN(auto dec, StreamDecoder::Open(st.codec, st.params, &file, st.offset,
                                                      st.comp_len, st.raw_len, st.name));
    QP_ASSIGN_OR_RETURN(std::vector<std::uint8_t> raw, ReadStream(*dec, st.raw_len));
    ByteReader r(raw);
    for (std::uint64_t i = 0; i < h.controls; ++i) {
      QP_ASSIGN_OR_RETURN(std::uint64_t seek, r.Varint("seek"));
      QP_ASSIGN_OR_RETURN(std::uint64_t add, r.Varint("add"));
      QP_ASSIGN_OR_RETURN(std::uint64_t copy, r.Varint("copy"));
      (void)seek;
      (void)copy;
      if (add >= Predictor::kMinBlock) ++blocks;
    }
  }
  return ApplyMemoryNeeded(h, blocks);
}

}  // namespace

Result<std::vector<std::uint8_t>> DiffFile(std::span<const std::uint8_t> old_data,
                                           std::span<const std::uint8_t> new_data,
                                           const FileDiffOptions& options) {
  if (old_data.size() > kMaxFileSize || new_data.size() > kMaxFileSize) {
    return Error(ErrorCode::kTooLarge,
                 "file larger than " + std::to_string(kMaxFileSize) + " bytes cannot be diffed");
  }
  // The predicted old bytes: the old file as the new one would be, were every address it
  // holds moved the way the matched blocks moved. Differences are taken against it.
  std::uint8_t transform = kTransformNone;
  const Transform suits = options.executable_transform ? TransformFor(old_data) : Transform::kNone;
  if (suits == Transform::kX86Learned) {
    if (options.x86_level != kTransformX86Branches && options.x86_level != kTransformX86Learned) {
      return Error(ErrorCode::kInvalidArgument, "unknown x86 prediction level");
    }
    transform = options.x86_level;
  } else if (IsArm64(suits)) {
    if (options.arm64_level != kTransformArm64 && options.arm64_level != kTransformArm64Frames) {
      return Error(ErrorCode::kInvalidArgument, "unknown AArch64 prediction level");
    }
    transform = options.arm64_level;
  } else {
    transform = static_cast<std::uint8_t>(suits);
  }
  // The learned transforms also predict the fields of the ELF's address tables, of the
  // kinds the patch's table mask names.
  if ((options.tables & ~ElfLayout::kAllTables) != 0) {
    return Error(ErrorCode::kInvalidArgument, "unknown address table kinds");
  }
  // Code is also matched as if its references had not moved (the predictor moves them).
  NormalizeFn normalize = nullptr;
  if (transform == kTransformX86Learned && options.normalized_matching &&
      new_data.size() >= kNormalizedX86 && TransformFor(new_data) == Transform::kX86Learned) {
    normalize = NormalizeX86Code;
  } else if (IsArm64(static_cast<Transform>(transform)) && IsArm64(TransformFor(new_data))) {
    normalize = NormalizeArm64Code;
  }
  std::vector<Control> controls;
  const bool near = options.near_identical && MatchNearIdentical(old_data, new_data, &controls);
  std::vector<FunctionPair> pairs;
  if (!near && options.symbol_pairing) pairs = PairFunctionsBySymbol(old_data, new_data);
  if (near) {
    if (options.progress) options.progress(new_data.size(), new_data.size());
    // Prediction re-aims references by how their targets moved; where no block moved,
    // it would predict every byte as it was, so it is not run (nor by the applier).
    if (NothingMoved(controls)) transform = kTransformNone;
  } else if (normalize != nullptr && new_data.size() >= kNormalizedOnly) {
    // A browser engine is matched normalized only: chromium 150 -> 156 came out 8.5%
    // smaller that way, and matching it twice took 760 s instead of 414.
    controls = MatchFiles(old_data, new_data, options.threads, options.progress, pairs, normalize);
    normalize = nullptr;
  } else {
    controls = MatchFiles(old_data, new_data, options.threads, options.progress, pairs);
  }
  const std::uint8_t tables = HasTableMask(transform) ? options.tables : 0;
  QP_ASSIGN_OR_RETURN(std::vector<std::uint8_t> payload,
                      EncodePayload(old_data, new_data, controls, transform, tables,
                                    options.compress, options.threads));
  if (!near && normalize != nullptr) {
    QP_ASSIGN_OR_RETURN(
        payload, SmallerWithNormalizedMatching(old_data, new_data, normalize, std::move(payload),
                                               transform, tables, pairs, options));
  }
  // Prediction's blocks count towards what applying needs; a payload over the limit is
  // written without prediction, which needs the stream windows alone.
  QP_ASSIGN_OR_RETURN(std::uint64_t need, ApplyMemoryOf(payload));
  if (need > options.apply_memory && transform != kTransformNone) {
    QP_ASSIGN_OR_RETURN(payload, EncodePayload(old_data, new_data, controls, kTransformNone, 0,
                                               options.compress, options.threads));
    QP_ASSIGN_OR_RETURN(need, ApplyMemoryOf(payload));
  }
  if (need > options.apply_memory) {
    return Error(ErrorCode::kTooLarge, "a delta of these files needs " +
                                           std::to_string(need >> 20) +
                                           " MiB to apply, over the limit of " +
                                           std::to_string(options.apply_memory >> 20) + " MiB");
  }
  return payload;
}

}  // namespace qp::delta
