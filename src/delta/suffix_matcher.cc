// The matching stage of file deltas: bsdiff's scan over a libdivsufsort suffix array of the
// old file, run in parallel over slices of the new file.
#include <divsufsort.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "delta/suffix_index.h"

namespace qp::delta {
namespace {

// The most of a normalized new file MatchFiles copies at once (a slice).
constexpr std::int64_t kNormalizedSlice = std::int64_t{32} << 20;

// How many bytes `a` and `b` share from the start, given that they share `from`; eight
// at a time.
std::size_t CommonPrefix(ByteView a, ByteView b, std::size_t from) {
  static_assert(std::endian::native == std::endian::little,
                "the first differing byte is the lowest");
  const std::size_t n = std::min(a.size(), b.size());
  std::size_t i = from;
  while (i + 8 <= n) {
    std::uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) return i + static_cast<std::size_t>(__builtin_ctzll(x ^ y) / 8);
    i += 8;
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}
}  // namespace

SuffixIndex::SuffixIndex(ByteView old) : old_(old), sa_(std::max<std::size_t>(old.size(), 1)) {
  if (!old.empty()) divsufsort(old.data(), sa_.data(), static_cast<saidx_t>(old.size()));
  k_ = old.size() >= (std::size_t{4} << 20) ? 3 : old.size() >= (std::size_t{64} << 10) ? 2 : 1;
  const std::size_t buckets = std::size_t{1} << (8 * k_);
  starts_.assign(buckets + 1, 0);
  // A suffix shorter than k sorts just before the suffixes that extend it with zeros, so it
  // is counted with them: every range stays contiguous in the array.
  for (std::size_t i = 0; i < old.size(); ++i) ++starts_[Key(old.subspan(i)) + 1];
  for (std::size_t b = 0; b < buckets; ++b) starts_[b + 1] += starts_[b];
}

std::size_t SuffixIndex::Key(ByteView s) const {
  std::size_t key = 0;
  for (int i = 0; i < k_; ++i) {
    key = key << 8 | (static_cast<std::size_t>(i) < s.size() ? s[static_cast<std::size_t>(i)] : 0);
  }
  return key;
}

std::int64_t SuffixIndex::Search(ByteView target, std::int64_t* pos) const {
  std::int64_t st = 0, en = static_cast<std::int64_t>(old_.size()) - 1;
  if (target.size() >= static_cast<std::size_t>(k_)) {
    // The narrowest non-empty range of a prefix of the target: its k bytes, else fewer.
    std::size_t key = Key(target);
    for (int len = k_; len > 0; --len) {
      const int drop = 8 * (k_ - len);
      const std::size_t b = key >> drop << drop, e = b + (std::size_t{1} << drop);
      if (starts_[e] > starts_[b]) {
        st = static_cast<std::int64_t>(starts_[b]);
        en = static_cast<std::int64_t>(starts_[e]) - 1;
        break;
      }
    }
  }
  // Binary search that remembers how much of the target each bound shares: the bytes
  // both bounds share are not compared again, so a search costs about log2(range) steps
  // plus the match length, not their product.
  auto suffix = [&](std::int64_t i) {
    return old_.subspan(static_cast<std::size_t>(sa_[static_cast<std::size_t>(i)]));
  };
  std::size_t lo = CommonPrefix(suffix(st), target, 0);
  std::size_t hi = st == en ? lo : CommonPrefix(suffix(en), target, 0);
  while (en - st >= 2) {
    const std::int64_t x = st + (en - st) / 2;
    const ByteView s = suffix(x);
    const std::size_t k = CommonPrefix(s, target, std::min(lo, hi));
    // Before the target if it has the smaller byte where they differ; one that ends
    // first counts as not before (bsdiff's memcmp over the shorter length).
    const bool before = k < std::min(s.size(), target.size()) && s[k] < target[k];
    if (before) {
      st = x;
      lo = k;
    } else {
      en = x;
      hi = k;
    }
  }
  if (lo > hi) {
    *pos = sa_[static_cast<std::size_t>(st)];
    return static_cast<std::int64_t>(lo);
  }
  *pos = sa_[static_cast<std::size_t>(en)];
  return static_cast<std::int64_t>(hi);
}

namespace {

// A paired function's old copy is taken over a match at most this many bytes longer
// elsewhere. On the corpus (quietpatch-delta diff, bytes): 0 saves 121 on libcrypto.so.3
// 3.0.17 -> 3.0.20, 63 on arm64 libc.so.6; 2 saves 258 and 414; 4 and 8 save more on those
// but cost amd64 libc.so.6 6 bytes; 16 and more lose.
constexpr std::int64_t kPairSlack = 2;

// Where the scan at `scan` lies in a paired function (pairs[*next] onwards; `*next` moves
// forward with the scan) and the function's old copy matches about as long as the best
// match (`*len` at `*pos`), the old copy is taken instead.
void PreferPairedFunction(std::span<const FunctionPair> pairs, std::size_t* next, ByteView old,
                          ByteView nw, std::int64_t origin, std::int64_t scan, std::int64_t end,
                          std::int64_t* len, std::int64_t* pos) {
  const std::int64_t in_new = origin + scan;
  while (*next < pairs.size() && pairs[*next].new_end <= in_new) ++*next;
  if (*next == pairs.size() || pairs[*next].new_begin > in_new || *len == 0) return;
  const std::int64_t at = in_new + pairs[*next].shift;
  if (at == *pos || at < 0 || at >= static_cast<std::int64_t>(old.size())) return;
  const auto n = static_cast<std::int64_t>(CommonPrefix(
      old.subspan(static_cast<std::size_t>(at)),
      nw.subspan(static_cast<std::size_t>(scan), static_cast<std::size_t>(end - scan)), 0));
  if (n > 0 && n + kPairSlack >= *len) {
    *len = n;
    *pos = at;
  }
}

}  // namespace

void ScanSlice(const SuffixIndex& index, ByteView old, ByteView nw, std::int64_t origin,
               std::int64_t begin, std::int64_t end, std::int64_t margin,
               std::span<const FunctionPair> pairs, std::vector<Control>* out,
               std::atomic<std::uint64_t>* done) {
  const std::int64_t oldsize = static_cast<std::int64_t>(old.size());
  std::size_t next_pair = 0;
  std::int64_t scan = begin, len = 0, pos = 0;
  // A slice starts as if the previous one ended aligned with the old file at its start.
  std::int64_t lastscan = begin, lastpos = std::min(origin + begin, oldsize);
  std::int64_t lastoffset = lastpos - begin;
  std::int64_t reported = begin;
  while (scan < end) {
    std::int64_t oldscore = 0;
    std::int64_t scsc;
    for (scsc = scan += len; scan < end; scan++) {
      if (oldsize == 0) {
        len = 0;
      } else {
        len = index.Search(
            nw.subspan(static_cast<std::size_t>(scan), static_cast<std::size_t>(end - scan)), &pos);
        if (!pairs.empty()) {
          PreferPairedFunction(pairs, &next_pair, old, nw, origin, scan, end, &len, &pos);
        }
      }
      for (; scsc < scan + len; scsc++) {
        if (scsc + lastoffset < oldsize && scsc + lastoffset >= 0 &&
            old[static_cast<std::size_t>(scsc + lastoffset)] ==
                nw[static_cast<std::size_t>(scsc)]) {
          oldscore++;
        }
      }
      if ((len == oldscore && len != 0) || len > oldscore + margin) break;
      if (scan + lastoffset < oldsize && scan + lastoffset >= 0 &&
          old[static_cast<std::size_t>(scan + lastoffset)] == nw[static_cast<std::size_t>(scan)]) {
        oldscore--;
      }
    }
    if (len != oldscore || scan == end) {
      std::int64_t s = 0, sf = 0, lenf = 0;
      for (std::int64_t i = 0; lastscan + i < scan && lastpos + i < oldsize;) {
        if (old[static_cast<std::size_t>(lastpos + i)] ==
            nw[static_cast<std::size_t>(lastscan + i)])
          s++;
        i++;
        if (s * 2 - i > sf * 2 - lenf) {
          sf = s;
          lenf = i;
        }
      }
      std::int64_t lenb = 0;
      if (scan < end) {
        std::int64_t sb = 0;
        s = 0;
        for (std::int64_t i = 1; scan >= lastscan + i && pos >= i; i++) {
          if (old[static_cast<std::size_t>(pos - i)] == nw[static_cast<std::size_t>(scan - i)]) s++;
          if (s * 2 - i > sb * 2 - lenb) {
            sb = s;
            lenb = i;
          }
        }
      }
      if (lastscan + lenf > scan - lenb) {
        std::int64_t overlap = (lastscan + lenf) - (scan - lenb);
        std::int64_t ss = 0, lens = 0;
        s = 0;
        for (std::int64_t i = 0; i < overlap; i++) {
          if (nw[static_cast<std::size_t>(lastscan + lenf - overlap + i)] ==
              old[static_cast<std::size_t>(lastpos + lenf - overlap + i)])
            s++;
          if (nw[static_cast<std::size_t>(scan - lenb + i)] ==
              old[static_cast<std::size_t>(pos - lenb + i)])
            s--;
          if (s > ss) {
            ss = s;
            lens = i + 1;
          }
        }
        lenf += lens - overlap;
        lenb -= lens;
      }
      Control c;
      c.add = static_cast<std::uint64_t>(lenf);
      c.copy = static_cast<std::uint64_t>((scan - lenb) - (lastscan + lenf));
      c.old_pos = lastpos;
      if (c.add != 0 || c.copy != 0) out->push_back(c);
      lastscan = scan - lenb;
      lastpos = pos - lenb;
      lastoffset = pos - scan;
      if (done != nullptr && lastscan - reported > (1 << 20)) {
        done->fetch_add(static_cast<std::uint64_t>(lastscan - reported));
        reported = lastscan;
      }
    }
  }
  if (done != nullptr) done->fetch_add(static_cast<std::uint64_t>(end - reported));
}

std::vector<Control> MatchFiles(std::span<const std::uint8_t> old_data,
                                std::span<const std::uint8_t> new_data, int threads,
                                const ProgressFn& progress, std::span<const FunctionPair> pairs,
                                NormalizeFn normalize) {
  const std::int64_t n = static_cast<std::int64_t>(new_data.size());
  std::vector<std::uint8_t> old_normalized;
  if (normalize != nullptr) old_normalized = normalize(old_data, 0, old_data.size());
  const ByteView old = normalize != nullptr ? ByteView(old_normalized) : old_data;
  const SuffixIndex index(old);
  // In large files more chance matches beat the current alignment by a few bytes, and each
  // costs a control and scatters the literals: libnode.so.108 (47 MB) is 14% smaller with a
  // margin of 24 (its arm64 build 23%), a 24 MB slice of chromium 11%; files under 16 MiB
  // (the corpus's libssl and libc) are better with bsdiff's 8.
  const std::int64_t margin = old.size() >= (std::size_t{16} << 20) ? 24 : 8;
  // Slices of at least 4 MiB: splitting costs a little at each seam. Normalized, the new
  // file is copied a slice at a time, so slices are at most 32 MiB: chromium's 297 MB would
  // otherwise be held twice.
  std::int64_t slices = std::clamp<std::int64_t>(n / (4 << 20), 1, std::max(threads, 1));
  if (normalize != nullptr) {
    slices = std::max(slices, (n + kNormalizedSlice - 1) / kNormalizedSlice);
  }
  std::vector<std::vector<Control>> parts(static_cast<std::size_t>(slices));
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::int64_t> next{0};
  std::atomic<int> running{0};
  auto work = [&] {
    for (std::int64_t i; (i = next.fetch_add(1)) < slices;) {
      const std::int64_t b = n * i / slices, e = n * (i + 1) / slices;
      auto& out = parts[static_cast<std::size_t>(i)];
      if (normalize == nullptr) {
        ScanSlice(index, old, new_data, 0, b, e, margin, pairs, &out, &done);
        continue;
      }
      const std::vector<std::uint8_t> slice =
          normalize(new_data, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(e));
      ScanSlice(index, old, slice, b, 0, e - b, margin, pairs, &out, &done);
    }
    running.fetch_sub(1);
  };
  const int workers_count = static_cast<int>(std::min<std::int64_t>(std::max(threads, 1), slices));
  running = workers_count;
  std::vector<std::thread> workers;
  for (int t = 0; t < workers_count; ++t) workers.emplace_back(work);
  // Progress is reported from this thread only, so the callback needs no locking.
  while (progress && running.load() > 0) {
    progress(done.load(), static_cast<std::uint64_t>(n));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : workers) w.join();
  if (progress) progress(static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(n));
  std::vector<Control> all;
  for (auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

}  // namespace qp::delta
