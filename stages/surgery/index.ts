// Model surgery: the public face of stages/surgery.

export { SurgeryOptions, SurgeryResult, applySurgery } from './applySurgery';
export {
  BLOCK_PLACEMENTS,
  BlockPlacement,
  DEFAULT_LORA_TARGETS,
  LORA_TARGETS,
  LoraTarget,
  MethodSpec,
  ResolvedSpec,
  SurgeryError,
  methodLabel,
  parseMethodLabel,
  resolveSpec,
} from './methodSpec';
export { HeadInit, newHead } from './head';
export { Trainability, assignTrainability, countParameters, firstTrainableBlock } from './trainability';
export { LoraAdapter, LoraLinear } from './loraLinear';
export { LoraLayerEntry, LoraOptions, injectLora, loraLayers, mergeLora, mergedCopy, unmergeLora } from './lora';
export { ADAPTER_METADATA, AdapterFileInfo, attachAdapters, loadAdapters, readAdapterInfo, saveAdapters } from './loraFile';
export { ExpansionPlan, describeExpansion, expandBlocks, planExpansion } from './blockExpansion';
export { ProjectionSite, ProjectionSlot, projectionSlots } from './projectionSlots';
export {
  PAPER_ARCHITECTURE,
  PAPER_CLASSES,
  PAPER_CONFIGURATIONS,
  PaperConfiguration,
  ParameterCountRow,
  agreesWithReported,
  countConfigurations,
  isPaperSetting,
  parseReported,
} from './paperConfigurations';
export { zeroModel } from './zeroModel';
