// qfx fuzzing: the safetensors reader (state_dicts exported from PyTorch, the carrier of .qfx files).
#include "qfx/io/safetensors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto st = qfx::io::ParseSafetensors("fuzz.safetensors", reinterpret_cast<const char*>(data), size);
  if (st.ok()) {
    for (const auto& [name, t] : st->tensors) (void)t.nbytes();
  }
  return 0;
}
