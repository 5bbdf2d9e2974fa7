/**
 * vitmsn: ViT-MSN image encoders (facebook/vit-msn-*) with Hugging Face transformers' numbers.
 *
 * @example
 * import { loadModel } from 'vitmsn';
 * const model = await loadModel('./vit-msn-small');
 * const out = await model.forward(pixelValues, [1, 3, 224, 224]);
 */
export { loadModel, backends, Model } from './model';
export { ERROR_CODES, VitMsnError, isVitMsnError, type ErrorCode } from './errors';
export type { ViTMSNConfig } from './config';
export type { ImageInput, RawImage, DecodeOptions } from './images';
export type { Pooling, EncodeOptions, ClassifyOptions, PreprocessOptions, Classification } from './encode';
export type { PreprocessorConfig } from './preprocessor';
export type {
  Tensor,
  Device,
  DType,
  LoadOptions,
  CallOptions,
  ForwardOptions,
  ForwardOutput,
  BackendInfo,
  DownloadProgress,
} from './types';
export type { BatchingOptions } from './call-queue';
export type { ModelStats } from './batch-stats';
export type { QueueStats } from './call-queue';
export {
  fitClassifier,
  fitKnn,
  loadHead,
  saveClassificationCheckpoint,
  embedImages,
  readImageFolder,
  saveEmbeddings,
  loadEmbeddings,
  LinearHead,
  KnnHead,
  type Head,
  type Protocol,
  type FitClassifierOptions,
  type LabelledEmbeddings,
  type CvResult,
} from './probe/index';
