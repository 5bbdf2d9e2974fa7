"""The onnxruntime q8 baseline: an fp32 ONNX graph rewritten as onnxruntime's quantize_dynamic rewrites it.

usage: /usr/bin/python3 bench/quantize_q8.py IN.onnx OUT.onnx     (Debian's python3-onnx and numpy)

Every MatMul whose second input is a constant [K, N] initializer becomes a com.microsoft
DynamicQuantizeMatMul(A, W_q, scale, zero_point): W_q int8, symmetric per tensor (scale = max|W| / 127,
zero point 0, W_q = round(W / scale) clipped to [-127, 127]: what onnxruntime's quantizer computes for
symmetric int8 weights); the activations are quantised per call by the operator (uint8, per tensor).
Everything else (the Add of the bias after each MatMul, the patch-embedding Conv, LayerNorm, Softmax,
the attention MatMuls between activations) is left as it is. The input's external weights are read
from beside it; the output is one self-contained file (int8 weights inline). Prints how many MatMuls
were rewritten.
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def quantize(src, dst):
    m = onnx.load(src)  # external data loaded from src's folder
    inits = {t.name: t for t in m.graph.initializer}
    used = {}
    for n in m.graph.node:
        for i in n.input:
            used[i] = used.get(i, 0) + 1
    nodes, new_inits, done = [], [], 0
    drop = set()
    for n in m.graph.node:
        w = inits.get(n.input[1]) if n.op_type == "MatMul" and len(n.input) == 2 else None
        if w is None or len(w.dims) != 2:
            nodes.append(n)
            continue
        W = numpy_helper.to_array(w).astype(np.float32)
        amax = float(np.abs(W).max())
        scale = np.float32(amax / 127.0 if amax > 0 else 1.0)
        Wq = np.clip(np.rint(W / scale), -127, 127).astype(np.int8)
        base = w.name
        new_inits += [
            numpy_helper.from_array(Wq, base + "_quantized"),
            numpy_helper.from_array(np.array(scale, dtype=np.float32), base + "_scale"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), base + "_zero_point"),
        ]
        nodes.append(
            helper.make_node(
                "DynamicQuantizeMatMul",
                [n.input[0], base + "_quantized", base + "_scale", base + "_zero_point"],
                list(n.output),
                name=(n.name or base) + "_quant",
                domain="com.microsoft",
            )
        )
        used[base] -= 1
        if used[base] == 0:
            drop.add(base)
        done += 1
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    keep = [t for t in m.graph.initializer if t.name not in drop]
    for t in keep:  # inline whatever was external
        if t.data_location == onnx.TensorProto.EXTERNAL:
            a = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array(a, t.name))
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep + new_inits)
    if not any(o.domain == "com.microsoft" for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(m, dst)
    print(f"quantized {done} MatMul -> DynamicQuantizeMatMul, wrote {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    quantize(sys.argv[1], sys.argv[2])
