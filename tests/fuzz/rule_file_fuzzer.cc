// qfx fuzzing: TOML rule files (--qconfig FILE.toml), parsed and applied to a small traced model, so
// that regexes and observer specs are exercised as well as the parser.
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/qconfig_mapping.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = qfx::quant::ParseRuleFile(std::string(reinterpret_cast<const char*>(data), size), "fuzz.toml");
  if (!config.ok()) return 0;
  static std::shared_ptr<qfx::nn::Module> model = *qfx::models::Create("mlp", /*seed=*/0);
  auto gm = qfx::fx::SymbolicTrace(model);
  if (!gm.ok()) return 0;
  qfx::quant::PrepareOptions po;
  po.config = *config;
  (void)qfx::quant::Prepare(**gm, po);
  return 0;
}
