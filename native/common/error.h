// Engine errors: every failure the engine can report carries a stable code that the binding
// forwards to JavaScript as `err.code`. Native code never aborts; it throws one of these.
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

// Stable codes (mirrored in lib/errors.ts).
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
// Images: decoding happens in lib/ (sharp), these come from the native checks.
inline constexpr const char* kImageInvalid = "ERR_IMAGE_INVALID";
inline constexpr const char* kNoClassifier = "ERR_NO_CLASSIFIER";
// Raised by lib/ only (hub downloads); listed so both sides name every code.
inline constexpr const char* kHubNotFound = "ERR_HUB_NOT_FOUND";
inline constexpr const char* kDownloadFailed = "ERR_DOWNLOAD_FAILED";
inline constexpr const char* kOffline = "ERR_OFFLINE";
// Raised by lib/ only (the model's call queue is full).
inline constexpr const char* kOverloaded = "ERR_OVERLOADED";
}  // namespace codes

}  // namespace vitmsn
