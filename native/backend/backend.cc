// The Backend ops a backend need not write itself: the layer's two fused ops as their parts, with
// the intermediate results in buffers of the backend's own (what a fusing backend never needs), and
// the refusal of the optional ones.
#include "backend/backend.h"

#include "backend/device_array.h"
#include "common/error.h"

namespace vitmsn {
namespace {

// a's rows, or LN(a) in `buf` when the op has a LayerNorm in front.
DevicePtr input_rows(Backend& be, DevicePtr a, const LayerNormPrologue& ln, int64_t rows, int64_t D, DeviceArray& buf) {
  if (!ln) return a;
  buf = DeviceArray(be, static_cast<size_t>(rows * D));
  be.layernorm({a, ln.gamma, ln.beta, buf.get(), rows, D, ln.eps});
  return buf.get();
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> Backend::decode_jpegs(const JpegFiles&, int64_t, int64_t, DevicePtr) {
  throw Error(codes::kDeviceUnavailable,
              "GPU JPEG decoding needs a model on a CUDA device (this one runs on " + name() + ")");
}

void Backend::qkv_attention(const QkvAttentionArgs& a) {
  const int64_t M = a.B * a.T, N = 3 * a.H * a.Dh;
  DeviceArray ln, qkv(*this, static_cast<size_t>(M * N));
  GemmArgs g;
  g.A = input_rows(*this, a.a, a.ln, M, a.D, ln), g.lda = a.D, g.Wp = a.W, g.bias = a.bias, g.C = qkv.get();
  g.M = M, g.N = N, g.K = a.D;
  gemm(g);
  AttentionArgs at;
  at.qkv = qkv.get(), at.out = a.out, at.head_scale = a.head_scale, at.probs = a.probs;
  at.B = a.B, at.T = a.T, at.H = a.H, at.Dh = a.Dh, at.scale = a.scale;
  attention(at);
}

void Backend::mlp(const MlpArgs& a) {
  DeviceArray ln, hidden(*this, static_cast<size_t>(a.M * a.I));
  GemmArgs g;
  g.A = input_rows(*this, a.a, a.ln, a.M, a.D, ln), g.lda = a.D, g.Wp = a.W1, g.bias = a.b1, g.C = hidden.get();
  g.M = a.M, g.N = a.I, g.K = a.D, g.epilogue = Epilogue::kGelu;
  gemm(g);
  g = GemmArgs();
  g.A = hidden.get(), g.lda = a.I, g.Wp = a.W2, g.bias = a.b2, g.C = a.out, g.residual = a.out;
  g.M = a.M, g.N = a.D, g.K = a.I;
  gemm(g);
}

}  // namespace vitmsn
