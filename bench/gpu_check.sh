#!/usr/bin/env bash
# One-command GPU check: run on a machine lent a CUDA GPU, from the repository
# root, with the project's Python environment active (or PYTHON=/path/to/python):
#
#   bash bench/gpu_check.sh            # about 8-9 minutes on one H100/H200-class GPU
#
# Every step has its own time limit, so one failure or hang cannot eat the budget; a failed
# step shows as FAILED in the table and the script goes on. Logs and JSON go to $OUT
# (default bench/results/gpu_check). It prints one table at the end. Steps:
#   1. tests: the model / inference / compile tests (CPU tests; no test takes a device yet),
#      plus torch.compile(mode=default, inductor) of the micro decode on CUDA, fullgraph;
#   2. bench/vae_speed.py at the paper's setting: batch 4 of 17x256x256, PV-VAE `paper` vs
#      Wan2.1 / Wan2.2, ISpeed (clips/s) and IMem (peak GiB), bf16 and fp16 speed;
#   3. bench/gen_speed.py with Latte-XL (TSpeed / TMem), batch 4, 17x256x256, bf16;
#   4. a 2-minute bf16 training smoke run of the `paper` preset with FSDP2 on one GPU
#      (torchrun, synthetic data, 17 frames at 256 px);
#   5. the streaming CLI on a 1080p clip (synthetic, written first): `pvvae reconstruct`
#      with the random `paper` model at 25 and 97 frames; peak RSS and GPU peak per run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-bench/results/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
declare -a ROWS

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, record the status
  local name=$1 limit=$2; shift 2
  local start=$(date +%s)
  echo "=== $name (limit ${limit}s)" | tee -a "$OUT/gpu_check.log"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? secs=$(( $(date +%s) - start ))
  local status=ok; [ $rc -ne 0 ] && status="FAILED rc=$rc"
  ROWS+=("| $name | $status | ${secs}s | $OUT/$name.log |")
  tail -n 25 "$OUT/$name.log" | tee -a "$OUT/gpu_check.log"
}

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))" || exit 1

step tests 150 "$PY" -m pytest -q -x -p no:cacheprovider tests/model tests/inference tests/cli
step compile_cuda 120 "$PY" - <<'PYEOF'
import time, torch
from tests.conftest import make_micro_vae
vae = make_micro_vae().cuda()
z = torch.randn(1, 8, 3, 4, 4, device="cuda")
with torch.no_grad():
    t = time.time(); dec = torch.compile(vae.decode, fullgraph=True)
    out = dec(z).sample; torch.cuda.synchronize()
    err = (out - vae.decode(z).sample).abs().max().item()
print(f"inductor fullgraph decode on CUDA: compile+run {time.time() - t:.1f} s, max |diff| {err:.2e}")
assert err < 1e-3
PYEOF
step vae_speed 200 "$PY" bench/vae_speed.py --device cuda --size 256 --batch 4 --frames 17 \
  --warmup 5 --repeats 20 --models paper wan2.1 wan2.2 --stream-frames 17 65 129 \
  --stream-size 256 --out "$OUT/vae_speed.json"
step vae_dtypes 120 "$PY" bench/vae_speed.py --device cuda --size 256 --batch 4 --frames 17 \
  --warmup 3 --repeats 10 --models paper --dtypes float32 bfloat16 float16
step gen_speed 120 "$PY" bench/gen_speed.py --device cuda --latte XL --size 256 --batch 4 \
  --warmup 5 --repeats 20 --dtype bfloat16 --out "$OUT/gen_speed.json"
step train_fsdp 170 timeout -s INT 120 "$PY" -m torch.distributed.run --nproc_per_node=1 \
  -m pvvae train configs/paper/video.yaml model.init_from=null data.kind=synthetic \
  "data.batch_sizes={256: 1}" data.num_workers=2 train.precision=bf16 train.parallel=fsdp \
  objective.lpips.pretrained_backbone=false train.steps=100000 train.log_every=5 \
  "train.out_dir=$OUT/runs"

"$PY" - "$OUT" <<'PYEOF'
import sys, torch
from pvvae import PVVAE
from pvvae.data.synthetic import synthetic_clip
from pvvae.data.video_stream import VideoWriter
out = sys.argv[1]
PVVAE.from_preset("paper").save_pretrained(f"{out}/paper_random")
with VideoWriter(f"{out}/clip1080.mp4", fps=24) as w:
    for i in range(0, 97, 8):  # 97 frames of 1920x1080, written 8 at a time
        n = min(8, 97 - i)
        w.write(synthetic_clip(0, i, num_frames=n, height=1080, width=1920, annotations=False)["video"])
PYEOF
for n in 25 97; do
  step "stream_1080p_$n" 150 /usr/bin/time -f "peak RSS %M KiB, wall %e s" "$PY" -m pvvae \
    reconstruct "$OUT/paper_random" "$OUT/clip1080.mp4" "$OUT/rec_$n.mp4" --device cuda \
    --dtype bf16 --max-frames "$n" --no-progress
done

echo
echo "| step | status | time | log |"
echo "|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
grep -h "clips/s\|x[0-9.]* (target\|streaming peak\|PSNR\|peak RSS\|it/s\|inductor" "$OUT"/*.log | head -40
