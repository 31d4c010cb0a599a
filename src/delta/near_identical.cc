// The matcher's short path for nearly identical files (see suffix_index.h). A rebuild with a
// one-line fix leaves a 90 MB library equal but for a few dozen bytes; indexing all of it
// to find them costs seconds and half a gigabyte. Here the old file's aligned 64-byte
// blocks are hashed, the new file is walked once with a rolling hash, and each hit is
// extended both ways into an anchor: a stretch equal under one alignment. The walk tries the
// last anchor's alignment first, so a file that kept its layout is compared rather than
// hashed. Anchors with the same alignment and a short gap merge (the gap becomes difference
// bytes, as bsdiff would have it); the remaining gaps are matched against a suffix index of
// the old bytes around them only.
#include <algorithm>
#include <cstring>

#include "delta/suffix_index.h"

namespace qp::delta {
namespace {

constexpr std::size_t kBlock = 64;
constexpr std::uint64_t kBase = 0x100000001B3ULL;
// A run this long under the last alignment makes an anchor without a hash hit.
constexpr std::size_t kMinResync = 32;
// Anchors with the same alignment and at most this many bytes between them merge.
constexpr std::int64_t kMergeGap = 256;
// The old bytes indexed around a gap, on each side of where its anchors put it.
constexpr std::int64_t kSlack = 4096;
// Files count as nearly identical when the gaps total at most 1/kGapShare of the new file.
constexpr std::uint64_t kGapShare = 256;
// ... and each gap's old window is at most this large.
constexpr std::int64_t kMaxWindow = std::int64_t{16} << 20;

struct Anchor {
  std::int64_t new_begin, old_begin, len;
};

std::uint64_t HashBlock(const std::uint8_t* p) {
  std::uint64_t h = 0;
  for (std::size_t i = 0; i < kBlock; ++i) h = h * kBase + p[i];
  return h;
}

std::size_t Slot(std::uint64_t h, std::size_t mask) {
  return static_cast<std::size_t>((h * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

std::int64_t Forward(ByteView old, ByteView nw, std::int64_t o, std::int64_t n) {
  const std::int64_t limit =
      std::min(static_cast<std::int64_t>(old.size()) - o, static_cast<std::int64_t>(nw.size()) - n);
  std::int64_t i = 0;
  while (i + 8 <= limit) {
    std::uint64_t a, b;
    std::memcpy(&a, old.data() + o + i, 8);
    std::memcpy(&b, nw.data() + n + i, 8);
    if (a != b) break;
    i += 8;
  }
  while (i < limit && old[static_cast<std::size_t>(o + i)] == nw[static_cast<std::size_t>(n + i)])
    ++i;
  return i;
}

// The anchors of `nw` in `old`, in new order, not overlapping; empty if the files are too
// different for the short path to pay (checked as the walk goes, so that it gives up early).
std::vector<Anchor> FindAnchors(ByteView old, ByteView nw) {
  // The index of the old file's blocks, built when first needed: a file that kept its
  // layout is walked by comparison alone.
  std::vector<std::uint32_t> table;  // old block offset + 1, 0 for empty
  std::size_t mask = 0;
  auto build = [&] {
    const std::size_t blocks = old.size() / kBlock;
    std::size_t cap = 1024;
    while (cap < blocks * 2) cap <<= 1;
    table.assign(cap, 0);
    mask = cap - 1;
    for (std::size_t b = 0; b < blocks; ++b) {
      std::size_t s = Slot(HashBlock(old.data() + b * kBlock), mask);
      // Linear probing, a few steps; a block that finds no room is simply not indexed.
      for (int step = 0; step < 4; ++step, s = (s + 1) & mask) {
        if (table[s] == 0) {
          table[s] = static_cast<std::uint32_t>(b * kBlock + 1);
          break;
        }
      }
    }
  };
  std::uint64_t top = 1;  // kBase^(kBlock-1), to take the outgoing byte off the rolling hash
  for (std::size_t i = 1; i < kBlock; ++i) top *= kBase;

  std::vector<Anchor> anchors;
  const std::int64_t n = static_cast<std::int64_t>(nw.size());
  const std::int64_t osize = static_cast<std::int64_t>(old.size());
  std::int64_t p = 0, covered = 0, floor = 0;  // floor: where the last anchor ended
  std::int64_t delta = 0;                      // the last anchor's old - new
  std::uint64_t h = 0;
  std::int64_t hashed_at = -1;  // h is the hash of nw[hashed_at, hashed_at + kBlock)
  auto add = [&](std::int64_t nb, std::int64_t ob, std::int64_t len) {
    // Backward, down to the previous anchor's end.
    while (nb > floor && ob > 0 &&
           old[static_cast<std::size_t>(ob - 1)] == nw[static_cast<std::size_t>(nb - 1)]) {
      --nb;
      --ob;
      ++len;
    }
    anchors.push_back({nb, ob, len});
    covered += len;
    floor = p = nb + len;
    delta = ob - nb;
  };
  while (p + static_cast<std::int64_t>(kBlock) <= n) {
    // Give up once a tenth of the new file is walked with less than half of it matched.
    if (p > n / 10 && covered * 2 < p) return {};
    // The last alignment (at first, none: the file as it lies), just after an anchor also
    // a little further on: a few changed bytes need no hashing.
    const std::int64_t ahead = p == floor ? kMergeGap : 0;
    bool resynced = false;
    for (std::int64_t q = p; q <= p + ahead && q + static_cast<std::int64_t>(kBlock) <= n; ++q) {
      const std::int64_t o = q + delta;
      if (o < 0 || o + static_cast<std::int64_t>(kMinResync) > osize ||
          old[static_cast<std::size_t>(o)] != nw[static_cast<std::size_t>(q)]) {
        continue;
      }
      const std::int64_t len = Forward(old, nw, o, q);
      if (len >= static_cast<std::int64_t>(kMinResync)) {
        add(q, o, len);
        resynced = true;
        break;
      }
    }
    if (resynced) continue;
    if (table.empty()) build();
    if (hashed_at >= 0 && hashed_at == p - 1) {
      h = (h - top * nw[static_cast<std::size_t>(p - 1)]) * kBase +
          nw[static_cast<std::size_t>(p - 1 + static_cast<std::int64_t>(kBlock))];
    } else {
      h = HashBlock(nw.data() + p);
    }
    hashed_at = p;
    for (std::size_t s = Slot(h, mask), step = 0; step < 4; ++step, s = (s + 1) & mask) {
      if (table[s] == 0) break;
      const std::int64_t ob = table[s] - 1;
      if (std::memcmp(old.data() + ob, nw.data() + p, kBlock) == 0) {
        add(p, ob, Forward(old, nw, ob, p));
        break;
      }
    }
    if (p == hashed_at) ++p;
  }
  std::uint64_t gaps = static_cast<std::uint64_t>(n - covered);
  if (gaps > nw.size() / kGapShare) return {};
  return anchors;
}

}  // namespace

bool MatchNearIdentical(ByteView old, ByteView nw, std::vector<Control>* out) {
  // Small files are matched whole quickly enough, and more closely.
  if (old.size() < (std::size_t{1} << 20) || nw.size() < (std::size_t{1} << 20)) return false;
  std::vector<Anchor> found = FindAnchors(old, nw);
  if (found.empty()) return false;
  // Merge anchors with the same alignment across short gaps.
  std::vector<Anchor> anchors;
  for (const Anchor& a : found) {
    if (!anchors.empty()) {
      Anchor& last = anchors.back();
      const std::int64_t gap = a.new_begin - (last.new_begin + last.len);
      if (a.old_begin - a.new_begin == last.old_begin - last.new_begin && gap <= kMergeGap) {
        last.len = a.new_begin + a.len - last.new_begin;
        continue;
      }
    }
    anchors.push_back(a);
  }
  const std::int64_t osize = static_cast<std::int64_t>(old.size());
  const std::int64_t nsize = static_cast<std::int64_t>(nw.size());
  std::vector<Control> controls;
  // The gap before anchor `i` (i == anchors.size(): the tail of the file), matched against
  // the old bytes between (and a little around) where its neighbours leave off.
  auto gap = [&](std::size_t i) {
    const std::int64_t nb = i == 0 ? 0 : anchors[i - 1].new_begin + anchors[i - 1].len;
    const std::int64_t ne = i == anchors.size() ? nsize : anchors[i].new_begin;
    if (ne <= nb) return true;
    const std::int64_t ob = i == 0 ? 0 : anchors[i - 1].old_begin + anchors[i - 1].len;
    const std::int64_t oe = i == anchors.size() ? osize : anchors[i].old_begin;
    const std::int64_t lo = std::max<std::int64_t>(0, std::min(ob, oe) - kSlack);
    const std::int64_t hi = std::min(osize, std::max(ob, oe) + (ne - nb) + kSlack);
    if (hi - lo > kMaxWindow) return false;
    ByteView window = old.subspan(static_cast<std::size_t>(lo), static_cast<std::size_t>(hi - lo));
    ByteView bytes = nw.subspan(static_cast<std::size_t>(nb), static_cast<std::size_t>(ne - nb));
    SuffixIndex index(window);
    std::vector<Control> part;
    ScanSlice(index, window, bytes, 0, 0, ne - nb, 8, {}, &part, nullptr);
    for (Control c : part) {
      c.old_pos += lo;
      controls.push_back(c);
    }
    return true;
  };
  for (std::size_t i = 0; i < anchors.size(); ++i) {
    if (!gap(i)) return false;
    const Anchor& a = anchors[i];
    controls.push_back(Control{static_cast<std::uint64_t>(a.len), 0, a.old_begin});
  }
  if (!gap(anchors.size())) return false;
  *out = std::move(controls);
  return true;
}

}  // namespace qp::delta
