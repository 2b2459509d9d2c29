// qfx fuzzing: the graph JSON reader (the "graph" of a .qfx file, qfx dump --format json).
#include "qfx/fx/formats.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = qfx::fx::GraphFromJson(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
  if (g.ok()) (void)qfx::fx::GraphToJson(**g);
  return 0;
}
