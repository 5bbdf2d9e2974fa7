// The native code's errors: every failure the engine or a backend can report carries a stable code
// that the binding forwards to JavaScript as `err.code`. Native code never aborts; it throws one of
// these. Below engine/ and the backends alike (native/common), so neither includes the other for it.
#pragma once
#include <stdexcept>
#include <string>

namespace vitmsn {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// The codes the native side throws: each must be a key of ERROR_CODES in lib/errors.ts, the one
// list of codes with their meaning (test/error-codes.test.ts checks every "ERR_…" in native/).
namespace codes {
inline constexpr const char* kInvalidArgument = "ERR_INVALID_ARGUMENT";
inline constexpr const char* kShape = "ERR_SHAPE_MISMATCH";
inline constexpr const char* kConfig = "ERR_CONFIG_INVALID";
inline constexpr const char* kWeightsNotFound = "ERR_WEIGHTS_NOT_FOUND";
inline constexpr const char* kCheckpointInvalid = "ERR_CHECKPOINT_INVALID";
inline constexpr const char* kWeightMissing = "ERR_WEIGHT_MISSING";
inline constexpr const char* kWeightShape = "ERR_WEIGHT_SHAPE";
inline constexpr const char* kNoMaskToken = "ERR_NO_MASK_TOKEN";
inline constexpr const char* kOutOfMemory = "ERR_OUT_OF_MEMORY";
inline constexpr const char* kDeviceUnavailable = "ERR_DEVICE_UNAVAILABLE";
inline constexpr const char* kUnsupportedDtype = "ERR_UNSUPPORTED_DTYPE";
inline constexpr const char* kInternal = "ERR_INTERNAL";
inline constexpr const char* kDisposed = "ERR_DISPOSED";
// Images: decoding happens in lib/ (sharp), these come from the native checks.
inline constexpr const char* kImageInvalid = "ERR_IMAGE_INVALID";
inline constexpr const char* kNoClassifier = "ERR_NO_CLASSIFIER";
}  // namespace codes

// An internal assert: what lib/check.ts has already refused in the caller's words can only reach
// the engine through a bug, so it is reported as one (ERR_INTERNAL) in a few words, never aborts.
inline void internal_check(bool ok, const char* what) {
  if (!ok) throw Error(codes::kInternal, std::string("internal check failed: ") + what);
}

}  // namespace vitmsn
