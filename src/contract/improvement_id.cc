#include "contract/improvement_id.h"

namespace qp::contract {

bool IsValidLabel(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabelLength) return false;
  for (char c : label) {
    if (c < 'a' || c > 'z') return false;
  }
  return true;
}

bool LabelLess(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

std::string NextLabel(const std::vector<std::string>& used) {
  std::string best;
  for (const auto& l : used) {
    if (IsValidLabel(l) && (best.empty() || LabelLess(best, l))) best = l;
  }
  if (best.empty()) return "a";
  // Increment like a base-26 number written in letters: z -> aa.
  std::string next = best;
  std::size_t i = next.size();
  while (i > 0 && next[i - 1] == 'z') next[--i] = 'a';
  if (i == 0) return "a" + next;
  ++next[i - 1];
  return next;
}

Result<ImprovementId> ImprovementId::Parse(std::string_view id) {
  const auto bad = [] {
    return Error(ErrorCode::kInvalidArgument, "improvement id must be component/base/label");
  };
  std::size_t a = id.find('/'), b = id.rfind('/');
  if (a == std::string_view::npos || a == b) return bad();
  ImprovementId out{std::string(id.substr(0, a)), std::string(id.substr(a + 1, b - a - 1)),
                    std::string(id.substr(b + 1))};
  if (out.component.empty() || out.base.empty() || out.label.empty()) return bad();
  if (!IsValidLabel(out.label)) {
    return Error(ErrorCode::kInvalidArgument,
                 "improvement label \"" + out.label + "\" is not lowercase letters");
  }
  return out;
}

std::string ImprovementId::ToString() const { return component + "/" + base + "/" + label; }

std::string ImprovementId::TargetDir() const { return ImprovementTargetDir(component, base); }

std::string ImprovementTargetDir(std::string_view component, std::string_view base) {
  return "improvements/" + std::string(component) + "/" + std::string(base) + "/";
}

}  // namespace qp::contract
