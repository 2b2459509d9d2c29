// qfx core: Status helpers shared by every library.
//
// Debian's Abseil (20220623) has no ABSL_RETURN_IF_ERROR / ASSIGN_OR_RETURN, so qfx defines its own.
// Fallible APIs return absl::Status or absl::StatusOr. Code that runs inside a model's forward (ops on
// tensors) cannot return a Status through every layer of user code, so it throws qfx::Error, which
// carries an absl::Status; API edges (RunModule, the tools) catch it and hand back the Status.
#pragma once

// Checked before any include (every qfx header includes this one, directly or not), so that a project
// compiling qfx's headers in an older mode gets this line rather than errors from inside them.
#if __cplusplus < 201703L
#error "qfx needs C++17: add 'build --cxxopt=-std=c++17' to your .bazelrc (README: Use qfx in your project)"
#endif

#include <stdexcept>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace qfx {

// An absl::Status thrown from inside forward code. what() is the status message.
class Error : public std::runtime_error {
 public:
  explicit Error(absl::Status status) : std::runtime_error(std::string(status.message())), status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// Throws qfx::Error(InvalidArgument) built from the pieces with absl::StrCat.
template <typename... Args>
[[noreturn]] void ThrowInvalid(const Args&... args) {
  throw Error(absl::InvalidArgumentError(absl::StrCat(args...)));
}

// Throws the status as qfx::Error when it is not OK.
inline void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) throw Error(status);
}

// Returns the value of a StatusOr or throws its status.
template <typename T>
T ValueOrThrow(absl::StatusOr<T> value) {
  if (!value.ok()) throw Error(value.status());
  return *std::move(value);
}

// Runs fn() and turns a thrown qfx::Error into its Status (for API edges).
template <typename Fn>
absl::Status CatchErrors(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.status();
  }
  return absl::OkStatus();
}

}  // namespace qfx

#define QFX_CONCAT_INNER_(a, b) a##b
#define QFX_CONCAT_(a, b) QFX_CONCAT_INNER_(a, b)

// Returns from the enclosing function if expr yields a non-OK absl::Status.
#define QFX_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status qfx_status_ = (expr);       \
    if (!qfx_status_.ok()) return qfx_status_; \
  } while (0)

// Declares or assigns lhs from an absl::StatusOr expression, returning its status on error.
#define QFX_ASSIGN_OR_RETURN(lhs, expr) QFX_ASSIGN_OR_RETURN_IMPL_(QFX_CONCAT_(qfx_statusor_, __LINE__), lhs, expr)
#define QFX_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
