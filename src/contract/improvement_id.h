// The improvement id and its label: the names every part uses for one improvement.
//
//   "<component>/<base>/<label>"   e.g. "openssl/3.0.17-1~deb12u2/a"
//
// The base is the version the component's vendor shipped; the label names the cumulative
// improvements on that base in order: a < b < ... < z < aa < ab (by length, then
// alphabetically). The id is the key of rollout.json, of reports and of the dashboard; its
// patches are published under "improvements/<component>/<base>/" (docs/repository.md).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace qp::contract {

// The longest label accepted (2^60 improvements on one base).
inline constexpr std::size_t kMaxLabelLength = 12;

// A non-empty run of lowercase ASCII letters, at most kMaxLabelLength long.
bool IsValidLabel(std::string_view label);

// Labels order by length, then alphabetically: a < b < ... < z < aa.
bool LabelLess(std::string_view a, std::string_view b);

// The label after the greatest of `used` ("a" when `used` is empty): z -> aa, az -> ba.
// Invalid labels in `used` are ignored.
std::string NextLabel(const std::vector<std::string>& used);

struct ImprovementId {
  std::string component, base, label;

  // kInvalidArgument "improvement id must be component/base/label" unless `id` has three
  // non-empty parts (component and label without '/', the base may not be empty) and a
  // valid label.
  static Result<ImprovementId> Parse(std::string_view id);

  // "<component>/<base>/<label>"
  std::string ToString() const;
  // "improvements/<component>/<base>/": where its patches are published.
  std::string TargetDir() const;

  bool operator==(const ImprovementId&) const = default;
};

// "improvements/<component>/<base>/" for any label of that component and base.
std::string ImprovementTargetDir(std::string_view component, std::string_view base);

}  // namespace qp::contract
