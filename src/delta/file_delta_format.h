// The file delta payload's constants, shared by the differ (file_delta.cc) and the applier
// (file_delta_apply.cc). The layout is specified in docs/patch-format.md.
#pragma once

#include <cstddef>
#include <cstdint>

#include "delta/predictor.h"

namespace qp::delta {

// Must equal the predictor's chunk: both sides predict over the same spans.
inline constexpr std::size_t kDeltaChunk = kPredictChunk;
// Controls are decoded up front (the address predictor needs the whole map); this bounds it.
inline constexpr std::uint64_t kMaxControls = 1u << 24;
// The transform byte (see Transform): none; x86-64 branches (format 1); x86-64 learned
// (format 2); AArch64 (format 3); AArch64 with frame offsets (format 5). The learned ones
// are followed by a table mask byte.
inline constexpr std::uint8_t kTransformNone = static_cast<std::uint8_t>(Transform::kNone);
inline constexpr std::uint8_t kTransformX86Branches =
    static_cast<std::uint8_t>(Transform::kX86Branches);
inline constexpr std::uint8_t kTransformX86Learned =
    static_cast<std::uint8_t>(Transform::kX86Learned);
inline constexpr std::uint8_t kTransformArm64 = static_cast<std::uint8_t>(Transform::kArm64);
inline constexpr std::uint8_t kTransformArm64Frames =
    static_cast<std::uint8_t>(Transform::kArm64Frames);

// Difference bytes are stored either as one stream ("dense") or, since they are mostly
// zero, as three: the lengths of the zero runs, the lengths of the non-zero runs, and the
// non-zero bytes ("sparse"). Positions and values have different statistics, and the
// sparse streams are far shorter to compress.
inline constexpr std::uint8_t kLayoutDense = 0;
inline constexpr std::uint8_t kLayoutSparse = 1;
// A flag of the layout byte (format 5): the control stream holds its controls by column,
// every seek, then every add, then every copy. Numbers of one kind side by side compress
// better (libc6's arm64 controls by 6%); the differ sets it in transform 4 payloads.
inline constexpr std::uint8_t kLayoutColumns = 2;
inline constexpr bool IsDense(std::uint8_t layout) { return (layout & kLayoutSparse) == 0; }

}  // namespace qp::delta
