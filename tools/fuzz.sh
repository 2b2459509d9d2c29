#!/usr/bin/env bash
# qfx: runs each libFuzzer target of tests/fuzz (npy, safetensors, graph JSON, rule files, .qfx, and .qfx
# loaded and run) for SECONDS, seeded with the repository's files (the zoo's weights and graphs, the rule
# files, .npy data) and with .qfx files that qfx quantize writes from zoo models. Fails on any crash,
# sanitizer report (the targets are built with --config=asan: ASan + UBSan), leak, input taking over 10 s
# (a hang) or allocation beyond 4 GiB. Findings stay in OUT_DIR/<target>/ (crash-*, leak-*, timeout-*,
# oom-*); replay one with `OUT_DIR/bin/<target> FILE`, and keep it as a regression seed under tests/data.
#   tools/fuzz.sh SECONDS [OUT_DIR]      (OUT_DIR defaults to /tmp/qfx-fuzz)
# QFX_FUZZ_SEED=N fixes libFuzzer's seed (0, the default, picks one); .ci/run uses 1.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-}
out=${2:-/tmp/qfx-fuzz}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: tools/fuzz.sh SECONDS [OUT_DIR]   (run each fuzz target for SECONDS seconds)" >&2
  exit 2
fi
command -v clang > /dev/null || { echo "fuzz: clang is missing: run tools/setup.sh" >&2; exit 1; }
ob="$HOME/.cache/qfx-asan/$(printf %s "$PWD" | md5sum | cut -c1-16)"  # tools/sanitize.sh's build
flags=(--curses=no --color=no --show_progress_rate_limit=60)
targets=(npy_fuzzer safetensors_fuzzer graph_json_fuzzer rule_file_fuzzer qfx_fuzzer qfx_run_fuzzer)
labels=()
for t in "${targets[@]}"; do labels+=("//tests/fuzz:$t"); done

echo "fuzz: building ${#targets[@]} targets with clang, libFuzzer, ASan + UBSan"
bazel --output_base="$ob" build --config=asan "${flags[@]}" "${labels[@]}" //tools:qfx || exit 1
bin_dir=$(bazel --output_base="$ob" info --config=asan bazel-bin 2> /dev/null)/tests/fuzz
mkdir -p "$out/bin" "$out/seeds"/{npy,safetensors,json,toml,qfx}
for t in "${targets[@]}"; do cp -f "$bin_dir/$t" "$out/bin/$t"; done
qfx_built="$(dirname "$bin_dir")/../tools/qfx"
cp -f "$qfx_built" "$out/bin/qfx"
bazel --output_base="$ob" shutdown || true  # the binaries are copied out; its server would hold memory

# Seeds: the repository's files, and models quantized here (an int8 CNN, a dynamic MLP).
find tests/data -name '*.npy' -size -2M -exec cp -f {} "$out/seeds/npy/" \;
find tests/data -name '*.safetensors' -size -2M -exec cp -f {} "$out/seeds/safetensors/" \;
find tests/data/fx -name '*.json' -exec cp -f {} "$out/seeds/json/" \;
cp -f tools/qconfigs/*.toml tests/data/quant/*.toml "$out/seeds/toml/"
cp -f tests/data/quant/*.qfx "$out/seeds/qfx/"
qfx="$out/bin/qfx"
"$qfx" quantize --model mnist_cnn --calib tests/data/mnist/calib200_x.npy --out "$out/seeds/qfx/mnist_cnn_int8.qfx" \
  > /dev/null || exit 1
"$qfx" quantize --model mlp --qconfig dynamic --out "$out/seeds/qfx/mlp_dynamic.qfx" > /dev/null || exit 1
for f in "$out"/seeds/qfx/*.qfx; do  # graph JSON as .qfx files carry it
  python3 -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; print(json.loads(b[8:8+n])["__metadata__"]["graph"])' \
    "$f" > "$out/seeds/json/$(basename "$f" .qfx).graph.json" || true
done

declare -A seeds=([npy_fuzzer]=npy [safetensors_fuzzer]=safetensors [graph_json_fuzzer]=json
  [rule_file_fuzzer]=toml [qfx_fuzzer]=qfx [qfx_run_fuzzer]=qfx)
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$out/$t/corpus"
  echo "fuzz: $t for ${seconds}s"
  if ! "$out/bin/$t" "$out/$t/corpus" "$out/seeds/${seeds[$t]}" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=4096 -malloc_limit_mb=4096 -max_len=1048576 -print_final_stats=1 -seed="${QFX_FUZZ_SEED:-0}" \
    -artifact_prefix="$out/$t/" > "$out/$t/log.txt" 2>&1; then
    failed+=("$t")
    grep -E "ERROR|SUMMARY|Test unit written|^Base64" "$out/$t/log.txt" | head -6 >&2  # Base64: the input, kept in CI logs
  fi
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$out/$t/log.txt" | tr '\n' ' '
  echo
done
if ((${#failed[@]} > 0)); then
  echo "fuzz: findings in ${failed[*]} (see $out/<target>/log.txt and the files it names)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each: no crash, leak, hang or runaway allocation"
