"""PyTorch's side of the end-to-end check in scripts/gpu-check.sh (GPU machine: torch, transformers, PIL).

The pipeline a PyTorch user would write for "JPEG files in, CLS embeddings out": a DataLoader over
the files (PIL decode + transformers' ViTImageProcessor in worker processes, pin_memory), batches
copied with non_blocking=True, ViTMSNModel with sdpa attention in bfloat16, the CLS rows copied back
to the host. Timed over all the files (after a warm-up pass over one batch with the same persistent
workers), for num_workers = cores and cores / 2; the best is what bench/e2e-jpeg.mjs is compared
with. Prints one JSON object (also written to --json).

usage: python3 scripts/gpu_pipeline_baseline.py --model <HF folder> --images <folder of img-*.jpg>
                                                [--batch 256] [--json out.json]
"""
import argparse, glob, json, os, time

import torch
from PIL import Image
from transformers import ViTImageProcessor, ViTMSNModel


class JpegFiles(torch.utils.data.Dataset):
    def __init__(self, files, processor):
        self.files, self.processor = files, processor

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with Image.open(self.files[i]) as im:
            rgb = im.convert("RGB")
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"][0]


def load_model(path):
    try:
        m = ViTMSNModel.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa")
    except TypeError:
        m = ViTMSNModel.from_pretrained(path, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    return m.cuda().eval()


def run(model, loader):
    out = []
    with torch.inference_mode():
        for x in loader:
            x = x.cuda(non_blocking=True).to(torch.bfloat16)
            out.append(model(pixel_values=x).last_hidden_state[:, 0].float().cpu())
    torch.cuda.synchronize()
    return torch.cat(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.images, "img-*.jpg")))
    if not files:
        raise SystemExit("no img-*.jpg in %s (bench/e2e-jpeg.mjs makes them)" % args.images)
    processor = ViTImageProcessor.from_pretrained(args.model)
    model = load_model(args.model)
    cores = os.cpu_count() or 1
    runs = {}
    for workers in sorted({cores, max(1, cores // 2)}, reverse=True):
        loader = torch.utils.data.DataLoader(
            JpegFiles(files, processor), batch_size=args.batch, num_workers=workers, pin_memory=True,
            persistent_workers=True, prefetch_factor=4)
        warm = torch.utils.data.DataLoader(
            JpegFiles(files[: args.batch], processor), batch_size=args.batch, num_workers=workers,
            pin_memory=True)
        run(model, warm)  # cuDNN / cuBLAS choices, CUDA context, allocator
        run(model, loader)  # starts the persistent workers
        t = time.perf_counter()
        emb = run(model, loader)
        runs[workers] = len(files) / (time.perf_counter() - t)
        assert emb.shape == (len(files), model.config.hidden_size)
    best = max(runs, key=runs.get)
    result = {"images": len(files), "batch": args.batch, "img_per_s": runs[best], "num_workers": best,
              "by_workers": {str(k): v for k, v in runs.items()}, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(0), "cores": cores}
    text = json.dumps(result)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
