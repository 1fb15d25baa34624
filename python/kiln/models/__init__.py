"""Our own PyTorch definitions of the models Kiln exports (published parameter names)."""
from .mobilellm import (  # noqa: F401
    CONFIG_NAMES,
    PUBLISHED_PARAMS,
    ConfigError,
    MobileLLMConfig,
    MobileLLMForCausalLM,
    build_config,
    init_random,
    load_model,
    mobilellm_config,
    rope_tables,
    tiny_config,
)
