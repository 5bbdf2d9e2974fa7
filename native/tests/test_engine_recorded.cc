// Recorded forwards (Backend::run_recorded, CUDA graphs on a GPU) keyed by everything they depend on,
// tested without a GPU. ReplayingBackend runs every op on the CPU backend but "records" as
// CudaBackend does: the first call of a key runs the body, later calls with that key return what
// the recording produced without running the model again, in the same GraphCache. If a key missed
// something its recording depends on — the model above all, since one backend serves every model on
// its device — a model would get another model's numbers; each result is compared bit for bit with
// the same model run eagerly on its own backend. The embed path (uint8 pixels in as bytes, pooled
// rows and logits out) is checked the same way for each pooling, normalisation and set of
// rescale/normalize constants.
//
//   test_engine_recorded <tiny-s8 dir> <tiny-mask dir>   (two checkpoints with the same input shape)
#include "tests/harness.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <iterator>
#include <vector>

#include "backend/factories.h"
#include "common/error.h"
#include "cuda/graph_cache.h"
#include "engine/model/model.h"
#include "tests/forwarding_backend.h"

using namespace vitmsn;

namespace {

// Inputs are fixed per (model, shape) in this test, so keeping a recording's output stands for
// replaying it.
struct Kept {
  size_t in_bytes = 0;
  std::vector<float> out;
};

class ReplayingBackend final : public ForwardingBackend {
 public:
  ReplayingBackend() : ForwardingBackend("replaying ") {}

  bool run_recorded(const RecordKey& key, const RecordedInput& input, float* host_out, size_t n_out,
                    const RecordedBody& body) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto k = Cache::key_of(key);
    if (Kept* kept = cache_.find(k)) {
      if (kept->in_bytes != input.bytes() || kept->out.size() != n_out) {
        ++size_mismatches;
        return false;
      }
      std::memcpy(host_out, kept->out.data(), n_out * sizeof(float));
      ++replays;
      return true;
    }
    auto kept = std::make_unique<Kept>();
    kept->in_bytes = input.bytes();
    kept->out.resize(n_out);
    DevicePtr in = cpu_->alloc((input.bytes() + 3) / 4);
    DevicePtr out = cpu_->alloc(n_out);
    if (input.float32)
      cpu_->upload(in, static_cast<const float*>(input.host), input.n);
    else
      cpu_->upload_bytes(in, input.host, input.n);
    body(in, out);
    cpu_->download(kept->out.data(), out, n_out);
    cpu_->release(in);
    cpu_->release(out);
    std::memcpy(host_out, kept->out.data(), n_out * sizeof(float));
    cache_.insert(k, std::move(kept));
    return true;
  }
  void forget_recorded(uint64_t owner) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    cache_.forget(owner);
  }

  size_t entries_of(uint64_t owner) {
    std::lock_guard<std::mutex> lock(mu_);
    return cache_.entries_of(owner);
  }
  size_t recordings() {
    std::lock_guard<std::mutex> lock(mu_);
    return cache_.size();
  }
  int replays = 0, size_mismatches = 0;

 private:
  using Cache = cuda::GraphCache<Kept>;
  std::mutex mu_;
  Cache cache_;
};

ModelConfig tiny(int64_t heads, int64_t inter, bool qkv_bias) {
  ModelConfig c;
  c.hidden_size = 32, c.num_layers = 2, c.num_heads = heads, c.intermediate_size = inter;
  c.image_height = c.image_width = 32, c.patch_size = 8, c.num_channels = 3;
  c.layer_norm_eps = 1e-6, c.qkv_bias = qkv_bias;
  return c;
}

std::vector<float> pixels(int64_t B, float phase) {
  std::vector<float> x(static_cast<size_t>(B * 3 * 32 * 32));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(0.05 * static_cast<double>(i) + phase));
  return x;
}

std::vector<float> run(const Model& m, int64_t B, float phase) {
  ForwardRequest r;
  r.pixels = pixels(B, phase);
  r.B = B, r.C = 3, r.H = 32, r.W = 32;
  return m.forward(r).last_hidden_state;
}

// An embed request of `B` images of fixed levels per shape (the kept-output replay stands for a
// replay on the same input), pooled as `how` says.
struct EmbedHow {
  std::string what;
  bool pool;
  Pooling pooling;
  bool normalize;
  bool logits;
  bool half_norm;  // rescale 1/127.5, mean = std = 0.5 instead of ViTImageProcessor's defaults
};

std::vector<float> embed(const Model& m, int64_t B, const EmbedHow& how) {
  std::vector<uint8_t> px(static_cast<size_t>(B * 32 * 32 * 3));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37 + i / 97) & 0xff);
  EmbedRequest r;
  r.pixels = px.data(), r.pixel_bytes = px.size(), r.B = B, r.H = 32, r.W = 32;
  if (how.half_norm) {
    r.norm.rescale_factor = 1.0 / 127.5;
    for (int c = 0; c < 3; ++c) r.norm.mean[c] = r.norm.std[c] = 0.5f;
  }
  r.pool = how.pool, r.pooling = how.pooling, r.normalize = how.normalize, r.logits = how.logits;
  const EmbedResult e = m.embed(r);
  std::vector<float> out = e.pooled;
  out.insert(out.end(), e.logits.begin(), e.logits.end());
  return out;
}

struct Case {
  std::string name;
  std::string dir;
  ModelConfig config;
  float phase;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::printf("usage: test_engine_recorded <tiny-s8 dir> <tiny-mask dir>\n");
    return 2;
  }
  const Case cases[2] = {{"tiny-s8", argv[1], tiny(4, 64, true), 0.3f},
                         {"tiny-mask", argv[2], tiny(2, 48, false), 1.1f}};
  const int64_t batches[2] = {1, 2};

  // References: each model alone, eager, on its own plain CPU backend (one thread, so bit-exact).
  std::map<std::pair<int, int64_t>, std::vector<float>> ref;
  for (int i = 0; i < 2; ++i) {
    auto m = Model::load(cases[i].config, cases[i].dir, std::shared_ptr<Backend>(make_cpu_backend(1)));
    for (int64_t B : batches) ref[{i, B}] = run(*m, B, cases[i].phase);
  }
  check(ref[{0, 1}] != ref[{1, 1}], "the two checkpoints give different outputs for the same shape");

  auto be = std::make_shared<ReplayingBackend>();
  auto same = [&](const Model& m, int i, int64_t B, const std::string& what) {
    check(run(m, B, cases[i].phase) == ref[{i, B}],
          what + ": " + cases[i].name + " B=" + std::to_string(B) + " equals its own eager result");
  };

  // Two models with the same input shape on one backend, called from several threads at once.
  std::unique_ptr<Model> models[2];
  for (int i = 0; i < 2; ++i) models[i] = Model::load(cases[i].config, cases[i].dir, be);
  check(models[0]->id() != models[1]->id(), "two models have different owner ids");
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread> callers;
    std::mutex report;
    for (int t = 0; t < 4; ++t) {
      callers.emplace_back([&, t] {
        const int i = (t + round) % 2;
        const int64_t B = batches[(t / 2 + round) % 2];
        const bool ok = run(*models[i], B, cases[i].phase) == ref[{i, B}];
        std::lock_guard<std::mutex> lock(report);
        check(ok, "concurrent round " + std::to_string(round) + ": " + cases[i].name + " B=" + std::to_string(B));
      });
    }
    for (auto& c : callers) c.join();
  }
  check(be->replays >= 8, "later calls were replays (" + std::to_string(be->replays) + ")");
  check(be->size_mismatches == 0, "no replay was asked for other sizes than it recorded");
  check(be->recordings() == 4, "one recording per model and batch size (" + std::to_string(be->recordings()) + ")");

  // Dispose one mid-stream: its recordings go with it; the other model stays right.
  const uint64_t gone = models[0]->id();
  check(be->entries_of(gone) > 0, "the first model has recordings");
  models[0].reset();
  check(be->entries_of(gone) == 0, "a disposed model's recordings are released");
  check(be->recordings() == 2, "the other model's recordings stay");
  for (int64_t B : batches) same(*models[1], 1, B, "after the other model went");

  // A new model after the old one went (its memory may be reused) never inherits its recordings;
  // the same checkpoint loaded again records afresh under a new id.
  models[0] = Model::load(cases[1].config, cases[1].dir, be);
  check(models[0]->id() != gone && models[0]->id() != models[1]->id(), "owner ids are never reused");
  for (int64_t B : batches) same(*models[0], 1, B, "second copy of tiny-mask");
  models[1].reset();
  models[1] = Model::load(cases[0].config, cases[0].dir, be);
  for (int64_t B : batches) same(*models[1], 0, B, "tiny-s8 loaded after tiny-mask went");
  for (int64_t B : batches) same(*models[0], 1, B, "tiny-mask alongside");
  models[0].reset();
  models[1].reset();
  check(be->recordings() == 0, "nothing is left once every model is gone");

  // The embed path records too: keyed by the model, the shape, the outputs and the rescale/normalize
  // constants (the recorded patchify holds them). Every variant on both models at once must equal
  // that model's own eager result, first call (recorded) and later ones (replayed).
  {
    const std::vector<EmbedHow> hows = {
        {"cls", true, Pooling::Cls, false, false, false},
        {"cls, other normalisation constants", true, Pooling::Cls, false, false, true},
        {"cls normalized", true, Pooling::Cls, true, false, false},
        {"cls-prenorm", true, Pooling::ClsPrenorm, false, false, false},
        {"mean", true, Pooling::Mean, false, false, false},
        {"mean normalized", true, Pooling::Mean, true, false, false},
    };
    std::map<std::tuple<int, int64_t, size_t>, std::vector<float>> eager;
    for (int i = 0; i < 2; ++i) {
      auto m = Model::load(cases[i].config, cases[i].dir, std::shared_ptr<Backend>(make_cpu_backend(1)));
      for (int64_t B : batches)
        for (size_t k = 0; k < hows.size(); ++k) eager[{i, B, k}] = embed(*m, B, hows[k]);
    }
    check(eager[{0, 1, 0}] != eager[{0, 1, 1}], "other normalisation constants give other embeddings");
    check(eager[{0, 1, 0}] != eager[{1, 1, 0}], "the two checkpoints embed differently");
    for (int i = 0; i < 2; ++i) models[i] = Model::load(cases[i].config, cases[i].dir, be);
    // Each variant twice in a row (recorded, then replayed: the cache keeps 8 recordings, the least
    // recently used going first), the two models alternating.
    int replayed = 0;
    for (int64_t B : batches)
      for (size_t k = 0; k < hows.size(); ++k)
        for (int i = 0; i < 2; ++i)
          for (int call = 1; call <= 2; ++call) {
            const int before = be->replays;
            check(embed(*models[i], B, hows[k]) == eager[{i, B, k}],
                  "embed " + hows[k].what + ", " + cases[i].name + " B=" + std::to_string(B) + ", call " +
                      std::to_string(call) + ": equals its own eager result");
            replayed += call == 2 && be->replays == before + 1;
          }
    const int variants = static_cast<int>(2 * std::size(batches) * hows.size());
    check(replayed == variants, "every variant's second call was a replay (" + std::to_string(replayed) + " of " +
                                    std::to_string(variants) + ")");
    check(be->size_mismatches == 0, "no embed replay was asked for other sizes than it recorded");
    models[0].reset();
    models[1].reset();
    check(be->recordings() == 0, "embed recordings are released with their models");
  }
  return finish();
}
