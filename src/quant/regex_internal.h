// qfx quant (internal): module-name regexes. RE2 matches in time linear in the name and parses without
// recursion, so a hostile rule file (100k nested parentheses, `(.*.*)*X`) is an error or a fast match,
// never a stack overflow or minutes of backtracking. RE2 syntax is Python's without backreferences or
// lookaround, which PyTorch's module_name_regex rules do not need.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace re2 {
class RE2;
}

namespace qfx {
namespace quant {
namespace internal {

// Longer patterns are refused (the limit is named in the error); module paths are far shorter.
inline constexpr size_t kMaxRegexLength = 4096;

class ModuleRegex {
 public:
  // `what` names the rule in errors, e.g. "module_name_regex".
  static absl::StatusOr<std::shared_ptr<const ModuleRegex>> Compile(const std::string& pattern,
                                                                    const std::string& what);
  ~ModuleRegex();
  bool MatchesPrefix(absl::string_view name) const;  // Python's re.match: anchored at the start only
  bool MatchesWhole(absl::string_view name) const;   // re.fullmatch

 private:
  explicit ModuleRegex(std::unique_ptr<re2::RE2> re);
  std::unique_ptr<re2::RE2> re_;
};

}  // namespace internal
}  // namespace quant
}  // namespace qfx
