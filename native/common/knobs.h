// The one table of VITMSN_* environment switches ("knobs"): name, allowed values, default, when it
// is read and what it does. Every read goes through here (test/knobs.test.ts greps the sources), so
// they share one parser and one convention: unset or empty → the default; a value outside the
// allowed ones → Error(ERR_DEVICE_UNAVAILABLE) naming the knob, raised when the backend that reads
// it is created (a model load fails cleanly; backends() says why). `vitmsn info` prints the table
// with the values in effect, and the README's table is checked against it by the same test.
#pragma once
#include <cstddef>
#include <string>

namespace vitmsn {
namespace knobs {

enum class Knob {
  kCpuIsa,
  kCpuAmx,
  kCpuMlp,
  kCpuQkvAttention,
  kCpuProfile,
  kCpuLayerRows,
  kSpinUs,
  kCublasLtPath,
  kNvjpegPath,
  kCudaAttention,
  kCudaAttentionWarps,
  kCudaGelu,
  kCudaGraphs,
  kCudaPinnedStaging,
  kCudaPipeline,
  kCudaGemmTune,
  kCudaVerbose,
  kCudaProfile,
  kCudaProfileOut,
  kCount,
};

enum class Kind {
  kChoice,   // one of `values` ("a|b|c")
  kInteger,  // an integer in [min, max]
  kPath,     // any non-empty text (a file or folder)
};

struct Spec {
  Knob knob;
  const char* name;  // VITMSN_…
  Kind kind;
  const char* values;     // kChoice: "a|b|c"; otherwise how the value reads, for the table
  long min, max;          // kInteger only
  const char* fallback;   // what unset means
  const char* read_when;  // "process" (first use, then fixed) or "load" (each backend creation)
  const char* meaning;
};

// The table, in enum order.
const Spec* table();
constexpr size_t kKnobCount = static_cast<size_t>(Knob::kCount);
const Spec& spec(Knob k);

// The knob's raw value: unset or empty → "". Checked against the table (throws as above).
std::string text(Knob k);
// kChoice knobs: the value, or the default when unset.
std::string choice(Knob k);
// kChoice knobs whose values are "0|1".
bool flag(Knob k);
// kInteger knobs: the value, or the default when unset.
long integer(Knob k);

}  // namespace knobs
}  // namespace vitmsn
