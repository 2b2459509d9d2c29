// qfx fuzzing: loading a .qfx model file (what people download and share), and with QFX_FUZZ_RUN defined
// (qfx_run_fuzzer) also running one batch through what loaded, at the input shape the file records.
#include "qfx/core/tensor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/io/model_file.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qfx::fuzz::InputFile file(data, size);
  if (!file.ok()) return 0;
  auto m = qfx::io::LoadModel(file.path());
  if (!m.ok()) return 0;
#ifdef QFX_FUZZ_RUN
  int64_t numel = 0;
  if (m->input_shape.empty() || !qfx::CheckedNumElements(m->input_shape, 4, &numel) || numel > (int64_t{1} << 20)) {
    return 0;  // the harness's own budget for one input
  }
  qfx::Tensor x = qfx::Tensor::Empty(m->input_shape, qfx::DType::kF32);
  float* p = x.data<float>();
  for (int64_t i = 0; i < numel; ++i) p[i] = static_cast<float>((i * 7919) % 255) / 127.f - 1.f;
  (void)qfx::fx::Interpreter(*m->module).Run(x);
#endif
  return 0;
}
