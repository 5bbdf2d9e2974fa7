// Model::load: checkpoint tensors → validated float32 weights on the backend.
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/host_memory.h"
#include "engine/io/checkpoint.h"
#include "engine/model/model.h"
#include "engine/model/weight_names.h"

namespace vitmsn {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

// Canonical name → stored tensor, so that every spelling of a checkpoint resolves the same way.
class TensorIndex {
 public:
  explicit TensorIndex(const Checkpoint& ck) : ck_(ck) {
    for (const std::string& stored : ck.names()) {
      std::string canon = canonical_weight_name(stored);
      auto [it, fresh] = by_canonical_.emplace(canon, stored);
      if (!fresh) {
        throw Error(codes::kCheckpointInvalid, "checkpoint holds both '" + it->second + "' and '" + stored +
                                                   "', two spellings of the same tensor");
      }
    }
  }

  bool has(const std::string& canon) const { return by_canonical_.count(canon) != 0; }

  // Reads a tensor as float32 after checking its shape. `expect` may omit leading 1-sized dims
  // that the checkpoint stores (cls_token is [1, 1, D]); they must match exactly otherwise.
  std::vector<float> read(const std::string& canon, const std::vector<int64_t>& expect) const {
    auto it = by_canonical_.find(canon);
    if (it == by_canonical_.end()) {
      throw Error(codes::kWeightMissing, "checkpoint has no tensor '" + canon + "' (also looked for 'vit." + canon +
                                             "' and transformers 5 spellings)");
    }
    const TensorInfo* t = ck_.find(it->second);
    if (t == nullptr || t->shape != expect) {
      throw Error(codes::kWeightShape, "tensor '" + it->second + "' has shape " +
                                           shape_str(t ? t->shape : std::vector<int64_t>{}) + ", expected " +
                                           shape_str(expect) + " for this config");
    }
    std::vector<float> out = ck_.read_f32(*t);
    release_mapped_pages(t->data, t->nbytes);  // streamed load: the mapped copy leaves our RSS
    return out;
  }

  std::vector<int64_t> shape_of(const std::string& canon) const {
    auto it = by_canonical_.find(canon);
    return it == by_canonical_.end() ? std::vector<int64_t>{} : ck_.find(it->second)->shape;
  }

 private:
  const Checkpoint& ck_;
  std::map<std::string, std::string> by_canonical_;
};

DeviceArray to_device(Backend& be, const std::vector<float>& host) {
  DeviceArray d(be, host.size());
  be.upload(d.get(), host.data(), host.size());
  return d;
}

}  // namespace

std::unique_ptr<Model> Model::load(const ModelConfig& config, const std::string& dir, std::shared_ptr<Backend> backend,
                                   WeightDtype dtype) {
  validate(config);
  std::unique_ptr<Checkpoint> ck = Checkpoint::open_dir(dir);
  TensorIndex idx(*ck);
  std::unique_ptr<Model> m(new Model(config, std::move(backend)));
  Backend& be = *m->backend_;
  ModelWeights& w = m->weights_;
  const int64_t D = config.hidden_size, I = config.intermediate_size, C = config.num_channels, p = config.patch_size,
                N0 = config.num_patches();
  auto load = [&](const std::string& name, const std::vector<int64_t>& shape) {
    return to_device(be, idx.read(name, shape));
  };
  // Streamed: each Linear is read, prepared and its float32 copy dropped before the next one, so
  // the peak stays near the prepared size plus one tensor.
  auto prepare = [&](const std::vector<float>& host, int64_t n, int64_t k) {
    return be.prepare_linear(host.data(), n, k, dtype);
  };
  auto load_linear = [&](const std::string& name, const std::vector<int64_t>& shape) {
    int64_t k = 1;
    for (size_t i = 1; i < shape.size(); ++i) k *= shape[i];
    return prepare(idx.read(name, shape), shape[0], k);
  };

  // int8: the patch embedding stays bf16. Its input is the raw normalised pixels and it is 1 of 49
  // GEMMs (~1% of the FLOPs); measured rel L2 vs float64 on real images with it in bf16 / int8:
  // ViT-S/16 1.01e-2 / 1.10e-2, ViT-B/16 1.47e-2 / 1.53e-2 (bench/accuracy.mjs).
  const WeightDtype patch_dtype = dtype == WeightDtype::kInt8 ? WeightDtype::kBFloat16 : dtype;
  {
    const std::vector<int64_t> shape{D, C, p, p};
    w.patch_w = be.prepare_linear(idx.read("embeddings.patch_embeddings.projection.weight", shape).data(), D, C * p * p,
                                  patch_dtype);
  }
  w.patch_b = load("embeddings.patch_embeddings.projection.bias", {D});
  w.cls = load("embeddings.cls_token", {1, 1, D});
  w.pos_table = idx.read("embeddings.position_embeddings", {1, N0 + 1, D});
  w.pos = to_device(be, w.pos_table);
  if (idx.has("embeddings.mask_token")) w.mask_token = load("embeddings.mask_token", {1, 1, D});

  for (int64_t l = 0; l < config.num_layers; ++l) {
    const std::string pre = "encoder.layer." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.ln1_g = load(pre + "layernorm_before.weight", {D});
    lw.ln1_b = load(pre + "layernorm_before.bias", {D});
    // q, k and v become one [3D, D] GEMM; their biases one [3D] vector.
    std::vector<float> qkv_w, qkv_b;
    qkv_w.reserve(3 * D * D);
    qkv_b.reserve(3 * D);
    for (const char* part : {"query", "key", "value"}) {
      const std::string base = pre + "attention.attention." + part;
      std::vector<float> wt = idx.read(base + ".weight", {D, D});
      qkv_w.insert(qkv_w.end(), wt.begin(), wt.end());
      if (config.qkv_bias) {
        std::vector<float> b = idx.read(base + ".bias", {D});
        qkv_b.insert(qkv_b.end(), b.begin(), b.end());
      } else {
        qkv_b.insert(qkv_b.end(), D, 0.0f);
      }
    }
    lw.qkv_w = prepare(qkv_w, 3 * D, D);
    std::vector<float>().swap(qkv_w);
    lw.qkv_b = to_device(be, qkv_b);
    lw.out_w = load_linear(pre + "attention.output.dense.weight", {D, D});
    lw.out_b = load(pre + "attention.output.dense.bias", {D});
    lw.ln2_g = load(pre + "layernorm_after.weight", {D});
    lw.ln2_b = load(pre + "layernorm_after.bias", {D});
    lw.fc1_w = load_linear(pre + "intermediate.dense.weight", {I, D});
    lw.fc1_b = load(pre + "intermediate.dense.bias", {I});
    lw.fc2_w = load_linear(pre + "output.dense.weight", {D, I});
    lw.fc2_b = load(pre + "output.dense.bias", {D});
    w.layers.push_back(std::move(lw));
  }
  w.final_g = load("layernorm.weight", {D});
  w.final_b = load("layernorm.bias", {D});

  if (idx.has("classifier.weight")) {
    std::vector<int64_t> s = idx.shape_of("classifier.weight");
    const int64_t n = s.size() == 2 ? s[0] : -1;
    if (n <= 0 || (config.num_labels >= 0 && n != config.num_labels)) {
      throw Error(codes::kWeightShape, "tensor 'classifier.weight' has shape " + shape_str(s) + ", expected [" +
                                           (config.num_labels >= 0 ? std::to_string(config.num_labels) : "labels") +
                                           ", " + std::to_string(D) + "]");
    }
    // The classifier stays float32 whatever dtype: it is tiny, and logits are what users compare.
    w.classifier_w = be.prepare_linear(idx.read("classifier.weight", {n, D}).data(), n, D, WeightDtype::kFloat32);
    w.classifier_b = load("classifier.bias", {n});
    w.num_labels = n;
  }
  // The float32 tensors streamed through the heap above are freed; give their pages back (ViT-B/16
  // int8: the process stayed ~17 MB bigger than what it holds).
  return_free_heap();
  return m;
}

}  // namespace vitmsn
