// qfx command line: the subcommands, each a function from parsed options to a Status.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace qfx {
namespace cli {

struct ModelFlags {
  std::string model;    // zoo name
  std::string weights;  // optional safetensors file
  uint64_t seed = 0;
};

struct RunFlags {
  ModelFlags model;
  std::string input, output;
  int64_t batch = 64;
};

struct EvalFlags {
  ModelFlags model;
  std::string input, labels;
  int64_t batch = 64;
};

struct BenchFlags {
  ModelFlags model;
  std::string shape;  // "1,3,224,224"; empty: the model's default
  int threads = 0;    // 0: all cores
  int iters = 20;
  bool json = false;
};

absl::Status Demo();
absl::Status Run(const RunFlags& flags);
absl::Status Eval(const EvalFlags& flags);
absl::Status Bench(const BenchFlags& flags);

}  // namespace cli
}  // namespace qfx
