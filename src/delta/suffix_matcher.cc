// The matching stage of file deltas: bsdiff's scan over a libdivsufsort suffix array of the
// old file, run in parallel over slices of the new file.
#include <divsufsort.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "delta/file_delta.h"

namespace qp::delta {
namespace {

using Bytes = std::span<const std::uint8_t>;

std::int64_t MatchLength(Bytes a, Bytes b) {
  std::size_t n = std::min(a.size(), b.size());
  std::size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<std::int64_t>(i);
}

// Longest match of `target` among the suffixes of `old` (binary search over the array).
std::int64_t Search(const std::int32_t* sa, Bytes old, Bytes target, std::int64_t st,
                    std::int64_t en, std::int64_t* pos) {
  while (en - st >= 2) {
    std::int64_t x = st + (en - st) / 2;
    std::size_t off = static_cast<std::size_t>(sa[x]);
    std::size_t n = std::min(old.size() - off, target.size());
    if (std::memcmp(old.data() + off, target.data(), n) < 0) {
      st = x;
    } else {
      en = x;
    }
  }
  std::int64_t x = MatchLength(old.subspan(static_cast<std::size_t>(sa[st])), target);
  std::int64_t y = MatchLength(old.subspan(static_cast<std::size_t>(sa[en])), target);
  if (x > y) {
    *pos = sa[st];
    return x;
  }
  *pos = sa[en];
  return y;
}

// bsdiff 4's scan, over new[begin, end). Emits controls with absolute old positions.
void ScanSlice(const std::int32_t* sa, Bytes old, Bytes nw, std::int64_t begin, std::int64_t end,
               std::vector<Control>* out, std::atomic<std::uint64_t>* done) {
  const std::int64_t oldsize = static_cast<std::int64_t>(old.size());
  std::int64_t scan = begin, len = 0, pos = 0;
  // A slice starts as if the previous one ended aligned with the old file at its start.
  std::int64_t lastscan = begin, lastpos = std::min(begin, oldsize);
  std::int64_t lastoffset = lastpos - begin;
  std::int64_t reported = begin;
  while (scan < end) {
    std::int64_t oldscore = 0;
    std::int64_t scsc;
    for (scsc = scan += len; scan < end; scan++) {
      if (oldsize == 0) {
        len = 0;
      } else {
        len =
            Search(sa, old,
                   nw.subspan(static_cast<std::size_t>(scan), static_cast<std::size_t>(end - scan)),
                   0, oldsize - 1, &pos);
      }
      for (; scsc < scan + len; scsc++) {
        if (scsc + lastoffset < oldsize && scsc + lastoffset >= 0 &&
            old[static_cast<std::size_t>(scsc + lastoffset)] ==
                nw[static_cast<std::size_t>(scsc)]) {
          oldscore++;
        }
      }
      if ((len == oldscore && len != 0) || len > oldscore + 8) break;
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

}  // namespace

std::vector<Control> MatchFiles(std::span<const std::uint8_t> old_data,
                                std::span<const std::uint8_t> new_data, int threads,
                                const ProgressFn& progress) {
  std::vector<std::int32_t> sa(std::max<std::size_t>(old_data.size(), 1));
  if (!old_data.empty()) {
    divsufsort(old_data.data(), sa.data(), static_cast<saidx_t>(old_data.size()));
  }
  const std::int64_t n = static_cast<std::int64_t>(new_data.size());
  // Slices of at least 4 MiB: splitting costs a little at each seam.
  int slices = static_cast<int>(std::clamp<std::int64_t>(n / (4 << 20), 1, std::max(threads, 1)));
  std::vector<std::vector<Control>> parts(static_cast<std::size_t>(slices));
  std::atomic<std::uint64_t> done{0};
  std::atomic<int> running{slices};
  std::vector<std::thread> workers;
  for (int i = 0; i < slices; ++i) {
    std::int64_t b = n * i / slices, e = n * (i + 1) / slices;
    workers.emplace_back([&, b, e, i] {
      ScanSlice(sa.data(), old_data, new_data, b, e, &parts[static_cast<std::size_t>(i)], &done);
      running.fetch_sub(1);
    });
  }
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
