#include "delta/file_delta.h"

#include <algorithm>
#include <cstring>

#include "core/memory_file.h"
#include "delta/byte_io.h"
#include "delta/x86_predictor.h"

namespace qp::delta {
namespace {

// Must equal the predictor's chunk: both sides predict over the same spans.
constexpr std::size_t kChunk = kPredictChunk;
// Controls are decoded up front (the address predictor needs the whole map); this bounds it.
constexpr std::uint64_t kMaxControls = 1u << 24;
constexpr std::uint8_t kTransformNone = 0;
constexpr std::uint8_t kTransformX86 = 1;

enum StreamIndex { kCtrl = 0, kDiff = 1, kExtra = 2 };
const char* const kStreamNames[] = {"control", "difference", "literal"};

void WriteStreamHeader(ByteWriter& w, const EncodedStream& s, std::uint64_t raw_len) {
  w.U8(static_cast<std::uint8_t>(s.codec));
  w.U8(static_cast<std::uint8_t>(s.params.size()));
  w.Bytes(s.params);
  w.Varint(raw_len);
  w.Varint(s.bytes.size());
}

std::vector<std::uint8_t> EncodeControls(const std::vector<Control>& controls) {
  ByteWriter w;
  std::int64_t old_pos = 0;
  for (const Control& c : controls) {
    w.SignedVarint(c.old_pos - old_pos);
    w.Varint(c.add);
    w.Varint(c.copy);
    old_pos = c.old_pos + static_cast<std::int64_t>(c.add);
  }
  return w.Take();
}

}  // namespace

Result<std::vector<std::uint8_t>> DiffFile(std::span<const std::uint8_t> old_data,
                                           std::span<const std::uint8_t> new_data,
                                           const FileDiffOptions& options) {
  if (old_data.size() > kMaxFileSize || new_data.size() > kMaxFileSize) {
    return Error(ErrorCode::kTooLarge, "file larger than " + std::to_string(kMaxFileSize) +
                                           " bytes cannot be diffed");
  }
  std::vector<Control> controls = MatchFiles(old_data, new_data, options.threads, options.progress);

  // The predicted old bytes: the old file as the new one would be, were every address it
  // holds moved the way the matched blocks moved. Differences are taken against it.
  std::uint8_t transform = kTransformNone;
  std::vector<std::uint8_t> predicted;
  if (options.executable_transform && X86Predictor::Applies(old_data)) transform = kTransformX86;

  std::vector<std::uint8_t> diff, extra;
  std::uint64_t add_total = 0, copy_total = 0;
  for (const Control& c : controls) {
    add_total += c.add;
    copy_total += c.copy;
  }
  diff.reserve(add_total);
  extra.reserve(copy_total);
  std::unique_ptr<X86Predictor> predictor;
  if (transform == kTransformX86) predictor = std::make_unique<X86Predictor>(old_data.size(), controls);
  std::vector<std::uint8_t> region;
  std::uint64_t new_pos = 0;
  for (const Control& c : controls) {
    const std::uint8_t* o = old_data.data() + c.old_pos;
    region.assign(o, o + c.add);
    if (predictor) predictor->Predict(static_cast<std::uint64_t>(c.old_pos), new_pos, region);
    for (std::uint64_t i = 0; i < c.add; ++i) {
      diff.push_back(static_cast<std::uint8_t>(new_data[new_pos + i] - region[i]));
    }
    new_pos += c.add;
    extra.insert(extra.end(), new_data.begin() + static_cast<std::ptrdiff_t>(new_pos),
                 new_data.begin() + static_cast<std::ptrdiff_t>(new_pos + c.copy));
    new_pos += c.copy;
  }

  std::vector<std::uint8_t> ctrl_raw = EncodeControls(controls);
  EncodedStream streams[3] = {CompressBest(ctrl_raw, options.compress),
                              CompressBest(diff, options.compress),
                              CompressBest(extra, options.compress)};
  std::uint64_t raw_lens[3] = {ctrl_raw.size(), diff.size(), extra.size()};

  ByteWriter w;
  w.U8(transform);
  w.Varint(old_data.size());
  w.Varint(new_data.size());
  w.Varint(controls.size());
  for (int i = 0; i < 3; ++i) WriteStreamHeader(w, streams[i], raw_lens[i]);
  for (const auto& s : streams) w.Bytes(s.bytes);
  return w.Take();
}

namespace {

struct StreamInfo {
  Codec codec;
  std::vector<std::uint8_t> params;
  std::uint64_t raw_len;
  std::uint64_t comp_len;
  std::uint64_t offset;
};

Error ControlError(std::uint64_t index, const std::string& what) {
  return Error(ErrorCode::kCorrupt, "control " + std::to_string(index) + ": " + what);
}

}  // namespace

Result<FileApplyResult> ApplyFileDelta(RandomAccessFile& old_file, RandomAccessFile& patch,
                                       std::uint64_t offset, std::uint64_t length,
                                       WritableFile& out) {
  if (offset + length < offset || offset + length > patch.Size()) {
    return Error(ErrorCode::kCorrupt, "delta payload lies outside the patch file");
  }
  // The fixed header is small; read at most 256 bytes of it.
  std::vector<std::uint8_t> head(static_cast<std::size_t>(std::min<std::uint64_t>(length, 256)));
  QP_ASSIGN_OR_RETURN(std::size_t got, patch.ReadAt(offset, head));
  if (got != head.size()) return Error(ErrorCode::kCorrupt, "truncated delta header");
  ByteReader r(head);
  QP_ASSIGN_OR_RETURN(std::uint8_t transform, r.U8("delta transform"));
  if (transform != kTransformNone && transform != kTransformX86) {
    return Error(ErrorCode::kUnsupported, "unknown delta transform " + std::to_string(transform));
  }
  QP_ASSIGN_OR_RETURN(std::uint64_t old_size, r.BoundedVarint("old size", kMaxFileSize));
  QP_ASSIGN_OR_RETURN(std::uint64_t new_size, r.BoundedVarint("new size", kMaxFileSize));
  QP_ASSIGN_OR_RETURN(std::uint64_t count, r.BoundedVarint("control count", kMaxControls));
  if (old_size != old_file.Size()) {
    return Error(ErrorCode::kVerificationFailed,
                 "delta expects a source of " + std::to_string(old_size) + " bytes, found " +
                     std::to_string(old_file.Size()));
  }
  StreamInfo streams[3];
  for (int i = 0; i < 3; ++i) {
    QP_ASSIGN_OR_RETURN(std::uint8_t codec, r.U8("stream codec"));
    QP_ASSIGN_OR_RETURN(std::uint8_t nparams, r.U8("stream parameters"));
    QP_ASSIGN_OR_RETURN(auto params, r.Bytes("stream parameters", nparams));
    QP_ASSIGN_OR_RETURN(std::uint64_t raw, r.BoundedVarint("stream length", kMaxFileSize));
    QP_ASSIGN_OR_RETURN(std::uint64_t comp, r.BoundedVarint("stream length", length));
    streams[i] = {static_cast<Codec>(codec), {params.begin(), params.end()}, raw, comp, 0};
  }
  std::uint64_t pos = offset + r.position();
  for (auto& s : streams) {
    s.offset = pos;
    pos += s.comp_len;
  }
  if (pos != offset + length) {
    return Error(ErrorCode::kCorrupt, "delta streams do not fill the payload exactly");
  }
  if (streams[kCtrl].raw_len > count * 30) {
    return Error(ErrorCode::kCorrupt, "control stream longer than its controls can be");
  }
  if (streams[kDiff].raw_len + streams[kExtra].raw_len != new_size) {
    return Error(ErrorCode::kCorrupt, "stream lengths do not add up to the new size");
  }

  // Controls, all of them, validated against the sizes before any output.
  std::vector<Control> controls;
  {
    QP_ASSIGN_OR_RETURN(auto dec, StreamDecoder::Open(streams[kCtrl].codec, streams[kCtrl].params,
                                                      &patch, streams[kCtrl].offset,
                                                      streams[kCtrl].comp_len,
                                                      streams[kCtrl].raw_len, kStreamNames[kCtrl]));
    std::vector<std::uint8_t> raw(static_cast<std::size_t>(streams[kCtrl].raw_len));
    QP_RETURN_IF_ERROR(dec->Read(raw));
    QP_RETURN_IF_ERROR(dec->Finish());
    ByteReader cr(raw);
    controls.reserve(static_cast<std::size_t>(count));
    std::int64_t old_pos = 0;
    std::uint64_t add_total = 0, copy_total = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      auto seek = cr.SignedVarint("control");
      auto add = cr.BoundedVarint("control", new_size);
      auto copy = cr.BoundedVarint("control", new_size);
      if (!seek.ok() || !add.ok() || !copy.ok()) return ControlError(i, "truncated or malformed");
      old_pos += *seek;
      if (*add > 0 && (old_pos < 0 || static_cast<std::uint64_t>(old_pos) + *add > old_size)) {
        return ControlError(i, "reads outside the source file");
      }
      add_total += *add;
      copy_total += *copy;
      if (add_total > streams[kDiff].raw_len || copy_total > streams[kExtra].raw_len) {
        return ControlError(i, "runs past the end of the new file");
      }
      controls.push_back(Control{*add, *copy, old_pos});
      old_pos += static_cast<std::int64_t>(*add);
    }
    if (cr.remaining() != 0) return Error(ErrorCode::kCorrupt, "trailing bytes after controls");
    if (add_total != streams[kDiff].raw_len || copy_total != streams[kExtra].raw_len) {
      return Error(ErrorCode::kCorrupt, "controls do not cover the new file");
    }
  }

  QP_ASSIGN_OR_RETURN(auto diff, StreamDecoder::Open(streams[kDiff].codec, streams[kDiff].params,
                                                     &patch, streams[kDiff].offset,
                                                     streams[kDiff].comp_len,
                                                     streams[kDiff].raw_len, kStreamNames[kDiff]));
  QP_ASSIGN_OR_RETURN(auto extra, StreamDecoder::Open(streams[kExtra].codec,
                                                      streams[kExtra].params, &patch,
                                                      streams[kExtra].offset,
                                                      streams[kExtra].comp_len,
                                                      streams[kExtra].raw_len,
                                                      kStreamNames[kExtra]));
  std::unique_ptr<X86Predictor> predictor;
  if (transform == kTransformX86) {
    QP_ASSIGN_OR_RETURN(predictor, X86Predictor::ForApply(old_file, controls));
  }

  Sha256 hasher;
  std::vector<std::uint8_t> old_buf(kChunk), diff_buf(kChunk);
  std::uint64_t new_pos = 0;
  for (std::size_t i = 0; i < controls.size(); ++i) {
    const Control& c = controls[i];
    std::uint64_t done = 0;
    while (done < c.add) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, c.add - done));
      std::uint64_t at = static_cast<std::uint64_t>(c.old_pos) + done;
      std::span<std::uint8_t> ob(old_buf.data(), n);
      QP_ASSIGN_OR_RETURN(std::size_t read, old_file.ReadAt(at, ob));
      if (read != n) return ControlError(i, "source file shorter than expected");
      if (predictor) QP_RETURN_IF_ERROR(predictor->PredictChunk(at, new_pos + done, ob));
      std::span<std::uint8_t> db(diff_buf.data(), n);
      QP_RETURN_IF_ERROR(diff->Read(db));
      for (std::size_t k = 0; k < n; ++k) ob[k] = static_cast<std::uint8_t>(ob[k] + db[k]);
      hasher.Update(ob);
      QP_RETURN_IF_ERROR(out.Append(ob));
      done += n;
    }
    new_pos += c.add;
    done = 0;
    while (done < c.copy) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, c.copy - done));
      std::span<std::uint8_t> eb(diff_buf.data(), n);
      QP_RETURN_IF_ERROR(extra->Read(eb));
      hasher.Update(eb);
      QP_RETURN_IF_ERROR(out.Append(eb));
      done += n;
    }
    new_pos += c.copy;
  }
  QP_RETURN_IF_ERROR(diff->Finish());
  QP_RETURN_IF_ERROR(extra->Finish());
  return FileApplyResult{new_pos, hasher.Finish()};
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
