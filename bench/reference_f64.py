"""A float64 numpy forward pass of ViTMSNModel, the reference bench/accuracy.mjs measures every engine against.

usage: python3 bench/reference_f64.py MODEL_DIR PIXELS.f32 B H W OUT.f64

MODEL_DIR: config.json + model.safetensors (legacy or `vit.`-prefixed names). PIXELS.f32: raw
little-endian float32 pixel_values [B, 3, H, W] (H, W = the config's image size). OUT.f64: raw float64
last_hidden_state [B, T, D]. numpy only. Mirrors docs/model.md exactly: patch embedding as a stride-p
convolution, CLS + position embeddings, pre-norm layers with LayerNorm at the config's
layer_norm_eps (biased variance), softmax over the keys of q·kᵀ/√Dh, exact erf GELU, the final
LayerNorm. Every weight is read in its stored precision and widened to float64.
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "anchors"))
import st  # noqa: E402  (safetensors on numpy alone)

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layernorm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def forward(model_dir, px):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    raw = st.load(os.path.join(model_dir, "model.safetensors"))
    w = {(k[4:] if k.startswith("vit.") else k): v.astype(np.float64) for k, v in raw.items()}
    D, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    eps, p = cfg.get("layer_norm_eps", 1e-12), cfg["patch_size"]
    Dh = D // H
    B, C, Hi, Wi = px.shape
    gh, gw = Hi // p, Wi // p
    x = px[:, :, : gh * p, : gw * p].reshape(B, C, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5).reshape(B, gh * gw, C * p * p)
    pw = w["embeddings.patch_embeddings.projection.weight"].reshape(D, C * p * p)
    x = x @ pw.T + w["embeddings.patch_embeddings.projection.bias"]
    cls = np.broadcast_to(w["embeddings.cls_token"].reshape(1, 1, D), (B, 1, D))
    x = np.concatenate([cls, x], 1) + w["embeddings.position_embeddings"].reshape(1, -1, D)
    T = x.shape[1]
    for i in range(L):
        pre = f"encoder.layer.{i}."
        lin = lambda t, n: t @ w[pre + n + ".weight"].T + w[pre + n + ".bias"]  # noqa: E731
        h = layernorm(x, w[pre + "layernorm_before.weight"], w[pre + "layernorm_before.bias"], eps)
        q, k, v = (lin(h, "attention.attention." + n).reshape(B, T, H, Dh).transpose(0, 2, 1, 3) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(Dh)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, D)
        x = x + lin(ctx, "attention.output.dense")
        h = layernorm(x, w[pre + "layernorm_after.weight"], w[pre + "layernorm_after.bias"], eps)
        x = x + lin(gelu(lin(h, "intermediate.dense")), "output.dense")
    return layernorm(x, w["layernorm.weight"], w["layernorm.bias"], eps)


if __name__ == "__main__":
    if len(sys.argv) != 7:
        raise SystemExit(__doc__)
    model_dir, pix, B, H, W, out = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6]), sys.argv[6]
    px = np.fromfile(pix, dtype="<f4").astype(np.float64).reshape(B, 3, H, W)
    forward(model_dir, px).astype("<f8").tofile(out)
