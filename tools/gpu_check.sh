#!/usr/bin/env bash
# qfx: the CUDA backend's check on a GPU machine, in one prepared script (issue 13). Two halves:
#
#   tools/gpu_check.sh prepare   here, with Bazel and nvcc: builds the CUDA tests, the GEMM benchmark and
#                                the qfx command line (static CUDA runtime) and copies them, with the
#                                Debian shared libraries they need, into .gpu/ (ignored by git; < 64 MiB)
#   tools/gpu_check.sh run       there (no Bazel; PyTorch 2.x present), from the repository root with
#                                .gpu/ carried: every CUDA test, then a benchmark table: qfx's int8 GEMM
#                                4096^3 and 8192^3 against torch._int_mm on the same card and as a share
#                                of the dense int8 peak (H100 / H200 SXM: 1979 TOPS), and resnet18,
#                                resnet50 and mobilenet_v2 at batch 1 (graph replay) and batch 256 on the
#                                GPU beside qfx on that machine's CPU. Under 8 minutes; a log and the
#                                table go to $OUT when it is set.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=.gpu

prepare() {
  bazel build -c opt //tests:backend_cuda_test //tools/bench:cuda_bench //tools:qfx || return 1
  rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/lib"
  cp -L bazel-bin/tests/backend_cuda_test bazel-bin/tools/bench/cuda_bench bazel-bin/tools/qfx "$dir/bin/"
  # Debian's libraries the binaries load (absl, fmt, Highway, RE2, ...), not the C runtime.
  for b in "$dir"/bin/*; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$dir/lib/"; done
  du -sh "$dir"
}

bench_json() {  # qfx bench ... --json, its JSON line (or {} on failure)
  local line
  line=$(timeout 120 "$dir/bin/qfx" bench "$@" --json 2>>"$log" | tail -1)
  [[ $line == \{* ]] && echo "$line" || echo "{}"
}

run() {
  export LD_LIBRARY_PATH="$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local out=${OUT:-/tmp/qfx-gpu-check}
  mkdir -p "$out"
  log="$out/gpu_check.log"
  : >"$log"
  nvidia-smi -L | tee -a "$log"
  local rc=0
  echo "== CUDA tests" | tee -a "$log"
  timeout 240 "$dir/bin/backend_cuda_test" 2>&1 | tee -a "$log" | grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) ' || true
  [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
  echo "== int8 GEMM" | tee -a "$log"
  local gemm=()
  for s in 4096 8192; do gemm+=("$(timeout 60 "$dir/bin/cuda_bench" $s $s $s 20 2>>"$log" | tail -1)") || rc=1; done
  local torch
  torch=$(timeout 90 python3 - 2>>"$log" <<'EOF'
import json, torch
r = {}
for s in (4096, 8192):
    a = torch.randint(-128, 127, (s, s), dtype=torch.int8, device="cuda")
    b = torch.randint(-128, 127, (s, s), dtype=torch.int8, device="cuda").t()
    for _ in range(3): torch._int_mm(a, b)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(20): torch._int_mm(a, b)
    e1.record(); torch.cuda.synchronize()
    r[s] = 2 * s**3 / (e0.elapsed_time(e1) / 20 / 1e3) / 1e12
print(json.dumps(r))
EOF
  )
  echo "== models" | tee -a "$log"
  python3 -c "import numpy as np; np.save('/tmp/calib.npy', np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32))"
  local rows=()
  for m in resnet18 resnet50 mobilenet_v2; do
    timeout 120 "$dir/bin/qfx" quantize --model "$m" --seed 1 --calib /tmp/calib.npy --out "/tmp/$m.qfx" >>"$log" 2>&1 || rc=1
    # Four arguments a model: its name, then GPU batch 1, GPU batch 256 and CPU batch 1 as JSON lines.
    rows+=("$m" "$(bench_json "/tmp/$m.qfx" --device cuda --shape 1,3,224,224 --iters 200)"
      "$(bench_json "/tmp/$m.qfx" --device cuda --shape 256,3,224,224 --iters 10)"
      "$(bench_json "/tmp/$m.qfx" --shape 1,3,224,224 --iters 10)")
  done
  python3 - "${gemm[@]}" "$torch" "${rows[@]}" <<'EOF' | tee "$out/gpu_check_table.md" | tee -a "$log"
import json, sys
args = sys.argv[1:]
gemm = [json.loads(a or "{}") for a in args[:2]]
torch = json.loads(args[2] or "{}")
print("| int8 GEMM | qfx TOPS | torch._int_mm TOPS | qfx / torch | qfx share of 1979 TOPS |")
print("|---|---|---|---|---|")
for g, s in zip(gemm, ("4096", "8192")):
    q, t = g.get("tops", 0), torch.get(s, 0)
    print(f"| {s}^3 | {q:.1f} | {t:.1f} | {q / t if t else 0:.2f} | {100 * q / 1979:.1f}% |")
print()
print("| model | GPU batch 1 ms (graph replay) | GPU batch 256 images/s | CPU batch 1 ms | GPU / MLPerf ResNet-50 94,700/s |")
print("|---|---|---|---|---|")
rows = args[3:]
for r in range(0, len(rows), 4):
    name = rows[r]
    b1, b256, cpu = (json.loads(a) for a in rows[r + 1:r + 4])
    ips = b256.get("inputs_per_s", 0)
    share = f"{100 * ips / 94700:.1f}%" if name == "resnet50" else ""
    print(f"| {name} | {b1.get('median_ms', 0):.3f} | {ips:.0f} | {cpu.get('median_ms', 0):.2f} | {share} |")
EOF
  [[ ${#gemm[@]} -eq 2 ]] || rc=1
  echo "gpu_check: rc=$rc (log: $log)"
  return "$rc"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *)
    echo "usage: tools/gpu_check.sh prepare | run" >&2
    exit 2
    ;;
esac
