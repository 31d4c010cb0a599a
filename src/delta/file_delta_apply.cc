// File deltas, the applier's side (see file_delta.h): streams the new file from the old
// one and the payload in bounded memory.
#include <algorithm>
#include <cstring>
#include <functional>

#include "core/memory_file.h"
#include "delta/byte_io.h"
#include "delta/file_delta.h"
#include "delta/file_delta_format.h"

namespace qp::delta {
namespace {

// Buffered byte access over a decoder, for the varint streams.
class VarintStream {
 public:
  VarintStream(std::unique_ptr<StreamDecoder> dec, std::uint64_t raw_len)
      : dec_(std::move(dec)), left_(raw_len) {}
  bool exhausted() const { return pos_ == buf_.size() && left_ == 0; }
  Result<std::uint64_t> Next(const char* what) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ == buf_.size()) {
        if (left_ == 0) return Error(ErrorCode::kCorrupt, std::string(what) + " stream ends early");
        buf_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(left_, 4096)));
        QP_RETURN_IF_ERROR(dec_->Read(buf_));
        left_ -= buf_.size();
        pos_ = 0;
      }
      std::uint8_t b = buf_[pos_++];
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return Error(ErrorCode::kCorrupt, std::string(what) + " stream: overlong varint");
  }
  Status Finish() { return dec_->Finish(); }

 private:
  std::unique_ptr<StreamDecoder> dec_;
  std::uint64_t left_;
  std::vector<std::uint8_t> buf_;
  std::size_t pos_ = 0;
};

// The difference bytes, from one dense stream or rebuilt from the three sparse ones.
class DiffReader {
 public:
  static Result<std::unique_ptr<DiffReader>> Dense(std::unique_ptr<StreamDecoder> dec) {
    auto r = std::make_unique<DiffReader>();
    r->dense_ = std::move(dec);
    return r;
  }
  static Result<std::unique_ptr<DiffReader>> Sparse(std::unique_ptr<VarintStream> gaps,
                                                    std::unique_ptr<VarintStream> runs,
                                                    std::unique_ptr<StreamDecoder> values) {
    auto r = std::make_unique<DiffReader>();
    r->gaps_ = std::move(gaps);
    r->runs_ = std::move(runs);
    r->values_ = std::move(values);
    return r;
  }

  Status Read(std::span<std::uint8_t> out) {
    if (dense_) return dense_->Read(out);
    std::size_t done = 0;
    while (done < out.size()) {
      if (zeros_ == 0 && nonzero_ == 0) {
        if (gaps_->exhausted()) {
          trailing_ = true;  // only zeros remain
          zeros_ = UINT64_MAX;
        } else {
          QP_ASSIGN_OR_RETURN(zeros_, gaps_->Next("zero-run"));
          QP_ASSIGN_OR_RETURN(nonzero_, runs_->Next("non-zero-run"));
          if (nonzero_ == 0) return Error(ErrorCode::kCorrupt, "empty non-zero run");
        }
      }
      std::size_t want = out.size() - done;
      if (zeros_ > 0) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros_, want));
        std::memset(out.data() + done, 0, n);
        if (!trailing_) zeros_ -= n;
        done += n;
      } else {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(nonzero_, want));
        QP_RETURN_IF_ERROR(values_->Read(out.subspan(done, n)));
        nonzero_ -= n;
        done += n;
      }
    }
    return OkStatus();
  }

  Status Finish() {
    if (dense_) return dense_->Finish();
    if (nonzero_ != 0 || (!trailing_ && zeros_ != 0) || !gaps_->exhausted() ||
        !runs_->exhausted()) {
      return Error(ErrorCode::kCorrupt, "difference runs extend past the new file");
    }
    QP_RETURN_IF_ERROR(gaps_->Finish());
    QP_RETURN_IF_ERROR(runs_->Finish());
    return values_->Finish();
  }

 private:
  std::unique_ptr<StreamDecoder> dense_;
  std::unique_ptr<VarintStream> gaps_, runs_;
  std::unique_ptr<StreamDecoder> values_;
  std::uint64_t zeros_ = 0, nonzero_ = 0;
  bool trailing_ = false;
};

Error MemoryError(std::uint64_t need, std::uint64_t limit) {
  return Error(ErrorCode::kTooLarge, "applying this delta needs at least " +
                                         std::to_string(need >> 20) + " MiB, over the limit of " +
                                         std::to_string(limit >> 20) + " MiB");
}

constexpr std::int64_t kMaxSeek = std::int64_t{1} << 36;

Error ControlError(std::uint64_t index, const std::string& what) {
  return Error(ErrorCode::kCorrupt, "control " + std::to_string(index) + ": " + what);
}

}  // namespace

Result<FileDeltaHeader> ReadFileDeltaHeader(RandomAccessFile& patch, std::uint64_t offset,
                                            std::uint64_t length) {
  if (offset + length < offset || offset + length > patch.Size()) {
    return Error(ErrorCode::kCorrupt, "delta payload lies outside the patch file");
  }
  // The fixed header is small; read at most 256 bytes of it.
  std::vector<std::uint8_t> head(static_cast<std::size_t>(std::min<std::uint64_t>(length, 256)));
  QP_ASSIGN_OR_RETURN(std::size_t got, patch.ReadAt(offset, head));
  if (got != head.size()) return Error(ErrorCode::kCorrupt, "truncated delta header");
  ByteReader r(head);
  FileDeltaHeader h;
  QP_ASSIGN_OR_RETURN(h.transform, r.U8("delta transform"));
  if (h.transform != kTransformNone && h.transform != kTransformX86Branches &&
      !HasTableMask(h.transform)) {
    return Error(ErrorCode::kUnsupported, "unknown delta transform " + std::to_string(h.transform));
  }
  if (HasTableMask(h.transform)) {
    QP_ASSIGN_OR_RETURN(h.tables, r.U8("address table mask"));
    if ((h.tables & ~ElfLayout::kAllTables) != 0) {
      return Error(ErrorCode::kUnsupported,
                   "unknown address table kinds " + std::to_string(h.tables));
    }
  }
  QP_ASSIGN_OR_RETURN(h.old_size, r.BoundedVarint("old size", kMaxFileSize));
  QP_ASSIGN_OR_RETURN(h.new_size, r.BoundedVarint("new size", kMaxFileSize));
  QP_ASSIGN_OR_RETURN(h.controls, r.BoundedVarint("control count", kMaxControls));
  QP_ASSIGN_OR_RETURN(h.layout, r.U8("difference layout"));
  if ((h.layout & ~(kLayoutSparse | kLayoutColumns)) != 0) {
    return Error(ErrorCode::kUnsupported, "unknown difference layout " + std::to_string(h.layout));
  }
  QP_ASSIGN_OR_RETURN(h.diff_len, r.BoundedVarint("difference length", h.new_size));
  // ctrl, then the difference stream(s), then literals.
  const bool dense = IsDense(h.layout);
  const char* const names[5] = {"control", dense ? "difference" : "zero-run",
                                dense ? "literal" : "non-zero-run", "difference", "literal"};
  h.streams.resize(dense ? 3 : 5);
  for (std::size_t i = 0; i < h.streams.size(); ++i) {
    QP_ASSIGN_OR_RETURN(std::uint8_t codec, r.U8("stream codec"));
    QP_ASSIGN_OR_RETURN(std::uint8_t nparams, r.U8("stream parameters"));
    QP_ASSIGN_OR_RETURN(auto params, r.Bytes("stream parameters", nparams));
    QP_ASSIGN_OR_RETURN(std::uint64_t raw, r.BoundedVarint("stream length", kMaxFileSize));
    QP_ASSIGN_OR_RETURN(std::uint64_t comp, r.BoundedVarint("stream length", length));
    h.streams[i] = {names[i], static_cast<Codec>(codec), {params.begin(), params.end()}, raw, comp,
                    0};
  }
  std::uint64_t pos = offset + r.position();
  for (auto& st : h.streams) {
    st.offset = pos;
    pos += st.comp_len;
  }
  if (pos != offset + length) {
    return Error(ErrorCode::kCorrupt, "delta streams do not fill the payload exactly");
  }
  if (h.streams.front().raw_len > h.controls * 30) {
    return Error(ErrorCode::kCorrupt, "control stream longer than its controls can be");
  }
  if (h.diff_len + h.streams.back().raw_len != h.new_size) {
    return Error(ErrorCode::kCorrupt, "stream lengths do not add up to the new size");
  }
  if (dense && h.streams[1].raw_len != h.diff_len) {
    return Error(ErrorCode::kCorrupt, "difference stream length mismatch");
  }
  if (!dense && h.streams[3].raw_len > h.diff_len) {
    return Error(ErrorCode::kCorrupt, "more difference bytes than the difference length");
  }
  return h;
}

std::uint64_t ApplyMemoryNeeded(const FileDeltaHeader& h, std::uint64_t blocks) {
  constexpr std::uint64_t kDecoderState = 256 << 10;  // zstd's context, LZMA's, buffers
  constexpr std::uint64_t kFixed = 1 << 20;           // chunk buffers, varint buffers
  std::uint64_t need = kFixed;
  for (std::size_t i = 0; i < h.streams.size(); ++i) {
    const auto& st = h.streams[i];
    std::uint64_t one = kDecoderState;
    if (st.codec == Codec::kLzma2 && st.params.size() == 2 && st.params[1] <= kMaxWindowLog) {
      one += std::uint64_t{1} << st.params[1];
    } else if (st.codec != Codec::kRaw) {
      one += std::uint64_t{1} << kMaxWindowLog;
    }
    // Controls by column are read by three decoders at once.
    need += i == 0 && (h.layout & kLayoutColumns) != 0 ? 3 * one : one;
  }
  const bool learning = HasTableMask(h.transform);
  if (h.transform != kTransformNone) {
    need += blocks * (sizeof(Predictor::Block) + (learning ? sizeof(std::uint32_t) : 0)) +
            Predictor::IndexBytes(h.old_size);
  }
  if (learning) need += TargetTable::Bytes(h.old_size);
  return need;
}

Result<FileApplyResult> ApplyFileDelta(RandomAccessFile& old_file, RandomAccessFile& patch,
                                       std::uint64_t offset, std::uint64_t length,
                                       WritableFile& out, std::uint64_t memory_limit) {
  QP_ASSIGN_OR_RETURN(FileDeltaHeader h, ReadFileDeltaHeader(patch, offset, length));
  if (h.old_size != old_file.Size()) {
    return Error(ErrorCode::kVerificationFailed, "delta expects a source of " +
                                                     std::to_string(h.old_size) + " bytes, found " +
                                                     std::to_string(old_file.Size()));
  }
  const std::uint8_t transform = h.transform, tables = h.tables, layout = h.layout;
  const std::uint64_t count = h.controls, new_size = h.new_size, diff_len = h.diff_len;
  const int nstreams = static_cast<int>(h.streams.size());
  const auto& streams = h.streams;
  const FileDeltaHeader::Stream& ctrl_info = streams[0];
  const FileDeltaHeader::Stream& extra_info = streams[static_cast<std::size_t>(nstreams - 1)];
  const std::uint64_t old_size = h.old_size;
  auto open = [&](int i) {
    const FileDeltaHeader::Stream& st = streams[static_cast<std::size_t>(i)];
    return StreamDecoder::Open(st.codec, st.params, &patch, st.offset, st.comp_len, st.raw_len,
                               st.name);
  };

  // The controls are read twice, streaming: first all of them, validated against the sizes
  // before any output (and, with a transform, gathered into the predictor's blocks), then
  // again while the file is written. Memory holds the blocks, never the controls.
  auto read_controls =
      [&](const std::function<Status(const Control&, std::uint64_t)>& fn) -> Status {
    QP_ASSIGN_OR_RETURN(auto dec, open(0));
    VarintStream cr(std::move(dec), ctrl_info.raw_len);
    // By column: the adds and the copies are read by decoders of their own, moved past the
    // columns before theirs.
    std::unique_ptr<VarintStream> columns[2];
    if ((layout & kLayoutColumns) != 0) {
      for (int k = 0; k < 2; ++k) {
        QP_ASSIGN_OR_RETURN(auto d, open(0));
        columns[k] = std::make_unique<VarintStream>(std::move(d), ctrl_info.raw_len);
        for (std::uint64_t i = 0; i < count * static_cast<std::uint64_t>(k + 1); ++i) {
          if (!columns[k]->Next("control").ok()) return ControlError(i % count, "truncated");
        }
      }
    }
    VarintStream& adds = columns[0] ? *columns[0] : cr;
    VarintStream& copies = columns[1] ? *columns[1] : cr;
    std::int64_t old_pos = 0;
    std::uint64_t add_total = 0, copy_total = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      auto seek = cr.Next("control");
      auto add = adds.Next("control");
      auto copy = copies.Next("control");
      if (!seek.ok() || !add.ok() || !copy.ok() || *add > new_size || *copy > new_size) {
        return ControlError(i, "truncated or malformed");
      }
      const std::int64_t step = ZigZagDecode(*seek);
      // No valid seek comes near 2^36; the bound keeps the position from overflowing.
      if (step > kMaxSeek || step < -kMaxSeek) return ControlError(i, "seeks too far");
      old_pos += step;
      if (*add > 0 && (old_pos < 0 || static_cast<std::uint64_t>(old_pos) + *add > old_size)) {
        return ControlError(i, "reads outside the source file");
      }
      if (*add > diff_len - add_total || *copy > extra_info.raw_len - copy_total) {
        return ControlError(i, "runs past the end of the new file");
      }
      QP_RETURN_IF_ERROR(fn(Control{*add, *copy, old_pos}, add_total + copy_total));
      add_total += *add;
      copy_total += *copy;
      old_pos += static_cast<std::int64_t>(*add);
    }
    if (!copies.exhausted()) return Error(ErrorCode::kCorrupt, "trailing bytes after controls");
    QP_RETURN_IF_ERROR(copies.Finish());
    if (add_total != diff_len || copy_total != extra_info.raw_len) {
      return Error(ErrorCode::kCorrupt, "controls do not cover the new file");
    }
    return OkStatus();
  };
  // The memory it needs, counted as the blocks are gathered: a payload that needs more than
  // the limit is refused before it costs more than that.
  if (ApplyMemoryNeeded(h, 0) > memory_limit)
    return MemoryError(ApplyMemoryNeeded(h, 0), memory_limit);
  std::vector<Predictor::Block> blocks;
  const Status validated = read_controls([&](const Control& c, std::uint64_t new_pos) -> Status {
    if (transform == kTransformNone) return OkStatus();
    Predictor::AddBlock(c, new_pos, &blocks);
    if ((blocks.size() & 0xffff) == 0 && ApplyMemoryNeeded(h, blocks.size()) > memory_limit) {
      return MemoryError(ApplyMemoryNeeded(h, blocks.size()), memory_limit);
    }
    return OkStatus();
  });
  QP_RETURN_IF_ERROR(validated);
  if (ApplyMemoryNeeded(h, blocks.size()) > memory_limit) {
    return MemoryError(ApplyMemoryNeeded(h, blocks.size()), memory_limit);
  }
  // The predictor first: it reads the old file's tables before the decoders take their
  // windows, so that the two never add up.
  std::unique_ptr<Predictor> predictor;
  if (transform != kTransformNone) {
    QP_ASSIGN_OR_RETURN(predictor, Predictor::Create(static_cast<Transform>(transform), old_file,
                                                     std::move(blocks), tables));
  }

  std::unique_ptr<DiffReader> diff;
  if (IsDense(layout)) {
    QP_ASSIGN_OR_RETURN(auto dense, open(1));
    QP_ASSIGN_OR_RETURN(diff, DiffReader::Dense(std::move(dense)));
  } else {
    QP_ASSIGN_OR_RETURN(auto gaps, open(1));
    QP_ASSIGN_OR_RETURN(auto runs, open(2));
    QP_ASSIGN_OR_RETURN(auto values, open(3));
    QP_ASSIGN_OR_RETURN(
        diff,
        DiffReader::Sparse(std::make_unique<VarintStream>(std::move(gaps), streams[1].raw_len),
                           std::make_unique<VarintStream>(std::move(runs), streams[2].raw_len),
                           std::move(values)));
  }
  QP_ASSIGN_OR_RETURN(auto extra, open(nstreams - 1));

  Sha256 hasher;
  // No chunk is longer than the file (small files take small buffers).
  const auto chunk = static_cast<std::size_t>(
      std::min<std::uint64_t>(kDeltaChunk, std::max<std::uint64_t>(new_size, 1)));
  std::vector<std::uint8_t> old_buf(chunk), diff_buf(chunk), out_buf;
  // Most controls make a few bytes: they are gathered into chunks before they are hashed
  // and handed on, since each Append may be a system call (a file) or more.
  out_buf.reserve(chunk);
  auto flush = [&]() -> Status {
    hasher.Update(out_buf);
    Status s = out.Append(out_buf);
    out_buf.clear();
    return s;
  };
  auto emit = [&](std::span<const std::uint8_t> bytes) -> Status {
    if (out_buf.size() + bytes.size() > chunk) QP_RETURN_IF_ERROR(flush());
    out_buf.insert(out_buf.end(), bytes.begin(), bytes.end());  // bytes: at most a chunk
    return OkStatus();
  };
  std::uint64_t new_pos = 0, index = 0;
  const bool literals = transform == kTransformArm64Frames;
  auto apply = [&](const Control& c, std::uint64_t) -> Status {
    std::uint64_t done = 0;
    while (done < c.add) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, c.add - done));
      std::uint64_t at = static_cast<std::uint64_t>(c.old_pos) + done;
      std::span<std::uint8_t> ob(old_buf.data(), n);
      QP_ASSIGN_OR_RETURN(std::size_t read, old_file.ReadAt(at, ob));
      if (read != n) return ControlError(index, "source file shorter than expected");
      std::span<std::uint8_t> db(diff_buf.data(), n);
      QP_RETURN_IF_ERROR(diff->Read(db));
      if (predictor) {
        QP_RETURN_IF_ERROR(predictor->Reconstruct(at, new_pos + done, ob, db));
      } else {
        for (std::size_t k = 0; k < n; ++k) ob[k] = static_cast<std::uint8_t>(ob[k] + db[k]);
      }
      QP_RETURN_IF_ERROR(emit(ob));
      done += n;
    }
    new_pos += c.add;
    done = 0;
    while (done < c.copy) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, c.copy - done));
      // Literal words are whole in a piece (a chunk is at least 4 bytes where a run is
      // longer than it).
      if (literals && n < c.copy - done) n -= static_cast<std::size_t>((new_pos + done + n) % 4);
      std::span<std::uint8_t> eb(diff_buf.data(), n);
      QP_RETURN_IF_ERROR(extra->Read(eb));
      if (literals) Arm64Literals(predictor->layout(), new_pos + done, eb, /*to_stored=*/false);
      QP_RETURN_IF_ERROR(emit(eb));
      done += n;
    }
    new_pos += c.copy;
    ++index;
    return OkStatus();
  };
  const Status applied = read_controls(apply);
  QP_RETURN_IF_ERROR(applied);
  if (!out_buf.empty()) QP_RETURN_IF_ERROR(flush());
  QP_RETURN_IF_ERROR(diff->Finish());
  QP_RETURN_IF_ERROR(extra->Finish());
  FileApplyResult result{new_pos, hasher.Finish(), {}};
  if (predictor) result.prediction = predictor->stats();
  return result;
}

Result<std::vector<std::uint8_t>> ApplyFileDeltaToMemory(std::span<const std::uint8_t> old_data,
                                                         std::span<const std::uint8_t> payload) {
  MemoryFile old_file(old_data), patch(payload);
  std::vector<std::uint8_t> out;
  VectorSink sink(&out);
  QP_RETURN_IF_ERROR(ApplyFileDelta(old_file, patch, 0, payload.size(), sink));
  return out;
}

}  // namespace qp::delta
