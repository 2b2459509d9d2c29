// qfx quant: module-name regexes on RE2 (see regex_internal.h).
#include "absl/strings/str_cat.h"
#include "re2/re2.h"
#include "src/quant/regex_internal.h"

namespace qfx {
namespace quant {
namespace internal {
namespace {

std::string Shorten(const std::string& s) { return s.size() <= 60 ? s : absl::StrCat(s.substr(0, 57), "..."); }

}  // namespace

ModuleRegex::ModuleRegex(std::unique_ptr<re2::RE2> re) : re_(std::move(re)) {}
ModuleRegex::~ModuleRegex() = default;

absl::StatusOr<std::shared_ptr<const ModuleRegex>> ModuleRegex::Compile(const std::string& pattern,
                                                                        const std::string& what) {
  if (pattern.size() > kMaxRegexLength) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", Shorten(pattern), "' is ", pattern.size(),
                                                   " characters long; the limit is ", kMaxRegexLength));
  }
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(int64_t{8} << 20);  // RE2's default; a pattern needing more is an error
  auto re = std::make_unique<re2::RE2>(pattern, options);
  if (!re->ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", Shorten(pattern),
                                                   "' is not a valid regex: ", re->error(),
                                                   " (RE2 syntax: Python's without backreferences or "
                                                   "lookaround)"));
  }
  return std::shared_ptr<const ModuleRegex>(new ModuleRegex(std::move(re)));
}

bool ModuleRegex::MatchesPrefix(absl::string_view name) const {
  return re_->Match(re2::StringPiece(name.data(), name.size()), 0, name.size(), re2::RE2::ANCHOR_START, nullptr, 0);
}

bool ModuleRegex::MatchesWhole(absl::string_view name) const {
  return re2::RE2::FullMatch(re2::StringPiece(name.data(), name.size()), *re_);
}

}  // namespace internal
}  // namespace quant
}  // namespace qfx
