"""The config: a dataclass schema (one class per option), per-key rules, strict dict conversion."""
from ics.config.convert import from_dict, to_dict, validate
from ics.config.fields import ConfigError, field_docs
from ics.config.schema import (GROUPS, OPTIONS, AdamConfig, CIFAR10Config, CIFAR100Config, CIFARConfig, CNNConfig,
                               Config, DataConfig, FashionMNISTConfig, ImageFolderConfig, MLPConfig, MNISTConfig,
                               ModelConfig, MomentumConfig, OptimConfig, ProbeAll, ProbeConfig, ProbeDefault, ProbeOff,
                               ReportConfig, SGDConfig, ToleranceConfig, TrainerConfig, option_name, schema_of)

__all__ = [n for n in dir() if not n.startswith("_")]
