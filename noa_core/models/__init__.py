"""The NOA model: ONNX-exportable AFNO, U-AFNO, θ / context conditioning, rollout and heads."""

from noa_core.models.backbone import Conditioning, ContextModule, NOABackbone, StepModule
from noa_core.models.conditioning import perturb_zero_layers
from noa_core.models.registry import MODELS, build_model

__all__ = ["MODELS", "Conditioning", "ContextModule", "NOABackbone", "StepModule", "build_model",
           "perturb_zero_layers"]
