"""transformers' side of scripts/gpu-check.sh (GPU machine: torch + transformers, no network).

For ViT-S/16, ViT-B/16 (parity) and ViT-L/16 (speed), with the deterministic weights of
test/fixtures/anchors (the same numbers vitmsn loads): writes under --out
  models/<arch>/                 HF model folders (make_detw_model.py)
  pixels.f32                     [4, 3, 224, 224] real images, preprocessed as HF's PIL processor does
  ref-<arch>.f64                 ViTMSNModel last_hidden_state in float64 (eager) on those pixels
  ref.json                       shapes, HF's own fp32/fp16/bf16 errors vs float64, and timings
Timings: bf16, CUDA events, median; eager and sdpa at batch 1, 8, 256; torch.compile(mode=
"reduce-overhead") for ViT-B/16 at --compile-batches (default 1: the batch-1 latency target; each
batch size costs a compilation of ~half a minute of device time).
"""
import argparse, json, os, statistics, subprocess, sys, time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHORS = os.path.join(HERE, "..", "test", "fixtures", "anchors")
sys.path.insert(0, ANCHORS)
import st  # noqa: E402

from transformers import ViTMSNModel  # noqa: E402

PIXEL_CANDIDATES = ["test/fixtures/preprocess.safetensors"]


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def load(path, dtype, attn):
    try:
        m = ViTMSNModel.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    except TypeError:
        m = ViTMSNModel.from_pretrained(path, torch_dtype=dtype, attn_implementation=attn)
    return m.cuda().eval()


def time_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--pixels", default=None)
    ap.add_argument("--compile-batches", default="1")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()

    pix_path = args.pixels or next((p for p in PIXEL_CANDIDATES if os.path.exists(p)), None)
    if pix_path is None:
        raise SystemExit("no preprocess.safetensors found (looked in %s)" % PIXEL_CANDIDATES)
    pre = st.load(pix_path)
    names = sorted(k[: -len(".pixel_values_pil")] for k in pre if k.endswith(".pixel_values_pil"))
    pixels = np.stack([pre[n + ".pixel_values_pil"] for n in names]).astype(np.float32)
    pixels.tofile(os.path.join(args.out, "pixels.f32"))
    result = {"images": names, "pixels_shape": list(pixels.shape), "arch": {}, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(0)}
    x = torch.from_numpy(pixels).cuda()

    for arch in ("vit-s16", "vit-b16", "vit-l16"):
        mdir = os.path.join(args.out, "models", arch)
        subprocess.run([sys.executable, os.path.join(ANCHORS, "make_detw_model.py"), arch, mdir], check=True,
                       stdout=subprocess.DEVNULL)
        r = {"model_dir": mdir, "errors": {}, "ms": {}}
        with torch.no_grad():
            if arch != "vit-l16":
                m64 = load(mdir, torch.float64, "eager")
                ref = m64(pixel_values=x.double()).last_hidden_state.cpu().numpy()
                ref.astype(np.float64).tofile(os.path.join(args.out, f"ref-{arch}.f64"))
                r["ref_shape"] = list(ref.shape)
                del m64
                for name, dt in (("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16)):
                    m = load(mdir, dt, "sdpa")
                    r["errors"][name] = rel_l2(m(pixel_values=x.to(dt)).last_hidden_state.float().cpu().numpy(), ref)
                    del m
            for attn in ("eager", "sdpa"):
                m = load(mdir, torch.bfloat16, attn)
                for b in ((1, 8, 256) if arch == "vit-b16" else (256,)):
                    xb = x.to(torch.bfloat16).repeat((b + 3) // 4, 1, 1, 1)[:b].contiguous()
                    r["ms"][f"{attn}-b{b}"] = time_ms(lambda: m(pixel_values=xb), 3, 10 if b == 256 else 30)
                del m
            if arch == "vit-b16":
                m = load(mdir, torch.bfloat16, "sdpa")
                mc = torch.compile(m, mode="reduce-overhead")
                for b in (int(v) for v in args.compile_batches.split(",") if v):
                    xb = x.to(torch.bfloat16).repeat((b + 3) // 4, 1, 1, 1)[:b].contiguous()
                    r["ms"][f"compile-b{b}"] = time_ms(lambda: mc(pixel_values=xb), 5, 50)
                del m, mc
        torch.cuda.empty_cache()
        result["arch"][arch] = r
        print(arch, json.dumps(r["errors"]), json.dumps(r["ms"]), f"{time.time() - t0:.0f}s", flush=True)
    json.dump(result, open(os.path.join(args.out, "ref.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
