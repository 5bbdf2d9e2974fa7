// Model::forward in parts with pipelined transfers (Backend::PipelinedIo, the CUDA backend's copy
// stream on a GPU), tested without a GPU: PipeliningBackend runs every op on the CPU and offers
// parts of 3 images, through a session that checks the calling protocol (each part uploaded once,
// in order, into a buffer allocated before the session began; finished after its upload; its output
// downloaded only after the next part is finished, or at the end, never before its finish; every
// download inside its block) and copies synchronously. On the CPU the engine's results do not
// depend on how the batch is cut but for float32's row-count-dependent blocking, so every forward
// must equal its parts run alone on a plain CPU backend, joined, bit for bit — hidden states and
// logits, part sizes 3/3/1, 3/3 and 3/1 — and requests the pipeline must not take (taps, small
// batches) must not open a session.
//
//   test_engine_pipelined <tiny-s8 dir> <tiny-cls dir>
#include "tests/harness.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/model/model.h"
#include "tests/forwarding_backend.h"

using namespace vitmsn;

namespace {

struct Protocol {
  int sessions = 0, violations = 0;
  std::vector<std::string> log;
  void bad(const std::string& what) {
    ++violations;
    log.push_back(what);
  }
};

class CheckingIo final : public Backend::PipelinedIo {
 public:
  CheckingIo(Backend& be, Protocol& p, std::set<void*> allocated_before, size_t max_in, size_t max_out)
      : be_(be), p_(p), before_(std::move(allocated_before)), max_in_(max_in), max_out_(max_out) {}
  void upload(int64_t part, DevicePtr dst, const float* host, size_t n) override {
    if (part != uploaded_) p_.bad("upload of part " + std::to_string(part) + " out of order");
    if (!before_.count(dst.get()))
      p_.bad("part " + std::to_string(part) + "'s input buffer was made after the session began");
    if (n > max_in_) p_.bad("an upload larger than the session's parts");
    be_.upload(dst, host, n);
    ++uploaded_;
  }
  void finish(int64_t part, DevicePtr src, size_t n) override {
    if (part != finished_ || part >= uploaded_) p_.bad("finish of part " + std::to_string(part) + " out of order");
    if (n > max_out_) p_.bad("an output block larger than the session's parts");
    blocks_.push_back({src, n});
    ++finished_;
  }
  void download(int64_t part, size_t offset, float* host, size_t n) override {
    if (part >= finished_) p_.bad("download of part " + std::to_string(part) + " before its finish");
    if (part + 1 < finished_ - 1)
      p_.bad("part " + std::to_string(part) + " downloaded late (buffers alternate by part % 2)");
    if (part < static_cast<int64_t>(blocks_.size()) && offset + n > blocks_[part].second)
      p_.bad("a download past its block");
    else if (part < static_cast<int64_t>(blocks_.size()))
      be_.download(host, blocks_[part].first + static_cast<int64_t>(offset), n);
  }

 private:
  Backend& be_;
  Protocol& p_;
  std::set<void*> before_;
  size_t max_in_, max_out_;
  int64_t uploaded_ = 0, finished_ = 0;
  std::vector<std::pair<DevicePtr, size_t>> blocks_;
};

class PipeliningBackend final : public ForwardingBackend {
 public:
  explicit PipeliningBackend(Protocol& p) : ForwardingBackend("pipelining "), p_(p) {}
  DevicePtr alloc(size_t n) override {
    DevicePtr d = cpu_->alloc(n);
    live_.insert(d.get());
    return d;
  }
  void release(DevicePtr d) noexcept override {
    live_.erase(d.get());
    cpu_->release(d);
  }
  int64_t pipeline_part_images(int64_t B) const override { return B >= 4 ? 3 : 0; }
  std::unique_ptr<PipelinedIo> pipelined_io(size_t max_in, size_t max_out) override {
    ++p_.sessions;
    return std::make_unique<CheckingIo>(*this, p_, live_, max_in, max_out);
  }

 private:
  Protocol& p_;
  std::set<void*> live_;  // allocations alive now (one thread: no lock)
};

// The two checkpoints' config.json, as the TS layer hands it over.
ModelConfig config(int64_t D, int64_t L, int64_t heads, int64_t inter, int64_t size, int64_t patch, int64_t labels) {
  ModelConfig c;
  c.hidden_size = D, c.num_layers = L, c.num_heads = heads, c.intermediate_size = inter;
  c.image_height = c.image_width = size, c.patch_size = patch, c.num_channels = 3;
  c.layer_norm_eps = 1e-6, c.qkv_bias = true, c.num_labels = labels;
  return c;
}

// Images [first, first + B) of a fixed sequence of images.
ForwardRequest request(int64_t B, int64_t size, int64_t first = 0) {
  ForwardRequest r;
  const size_t per = static_cast<size_t>(3 * size * size);
  r.pixels.resize(static_cast<size_t>(B) * per);
  for (size_t i = 0; i < r.pixels.size(); ++i)
    r.pixels[i] = static_cast<float>(std::sin(0.013 * static_cast<double>(i + static_cast<size_t>(first) * per)));
  r.B = B, r.C = 3, r.H = size, r.W = size;
  return r;
}

// What the parts compute: each part's images as a forward of their own (float32 kernels may pick
// another blocking for another row count, so a whole-batch forward is not the reference), joined.
ForwardResult by_parts(const Model& m, int64_t B, int64_t size, int64_t per) {
  ForwardResult all;
  for (int64_t b0 = 0; b0 < B; b0 += per) {
    const ForwardResult part = m.forward(request(std::min(per, B - b0), size, b0));
    all.last_hidden_state.insert(all.last_hidden_state.end(), part.last_hidden_state.begin(),
                                 part.last_hidden_state.end());
    all.logits.insert(all.logits.end(), part.logits.begin(), part.logits.end());
  }
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::printf("usage: test_engine_pipelined <tiny-s8 dir> <tiny-cls dir>\n");
    return 2;
  }
  const struct {
    std::string dir;
    ModelConfig cfg;
  } cases[2] = {{argv[1], config(32, 2, 4, 64, 32, 8, -1)}, {argv[2], config(48, 3, 3, 96, 48, 16, 5)}};
  for (const auto& [dir, cfg] : cases) {
    run_case(dir, [&] {
      const int64_t size = cfg.image_height;
      auto plain = Model::load(cfg, dir, std::shared_ptr<Backend>(make_cpu_backend(1)));
      Protocol protocol;
      auto be = std::make_shared<PipeliningBackend>(protocol);
      auto piped = Model::load(cfg, dir, be);
      const std::string name = dir.substr(dir.find_last_of('/') + 1);
      for (int64_t B : {7, 6, 4}) {
        const int before = protocol.sessions;
        const ForwardResult want = by_parts(*plain, B, size, be->pipeline_part_images(B));
        const ForwardResult got = piped->forward(request(B, size));
        check(protocol.sessions == before + 1, name + " B=" + std::to_string(B) + ": one pipelined session");
        check(got.last_hidden_state == want.last_hidden_state,
              name + " B=" + std::to_string(B) + ": hidden states equal the parts run alone, bit for bit");
        check(got.logits == want.logits && (piped->num_labels() == 0 || !got.logits.empty()),
              name + " B=" + std::to_string(B) + ": logits equal too (" + std::to_string(got.logits.size()) + ")");
      }
      const int before = protocol.sessions;
      ForwardRequest tapped = request(7, size);
      tapped.output_hidden_states = true;
      piped->forward(tapped);
      piped->forward(request(3, size));
      check(protocol.sessions == before, name + ": taps and batches below a part's size run whole");
      check(protocol.violations == 0, name + ": the session protocol held",
            protocol.log.empty() ? "" : protocol.log.front());
    });
  }
  return finish();
}
