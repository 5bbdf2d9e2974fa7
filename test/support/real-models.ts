// Real-size ViT-MSN models whose weights onnxruntime-node and vitmsn share, plus the ORT side of the
// comparison. The logic lives in fixtures.mjs (plain JS, shared with bench/cpu-vs-ort.mjs).
export {
  ANCHORS_DIR,
  REAL_ARCHS,
  realModel,
  ortSession,
  ortRun,
  closeOrt,
  relL2,
  tinyModelFolder,
  FACEBOOK_PREPROCESSOR,
  syntheticPixels,
  type RealArch,
} from './fixtures.mjs';
