// qfx fuzzing: the .npy reader (calibration data, run inputs).
#include "qfx/io/npy.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto t = qfx::io::ParseNpy("fuzz.npy", reinterpret_cast<const char*>(data), size);
  if (t.ok()) (void)t->nbytes();
  return 0;
}
