"""The API's request bodies and its one error body: every size capped, every name one the schema enumerates.

Each plan's options are a model of their own (AnalyzeOptions, ServeOptions, TrainOptions) so that /api/view can take
the model once and the options of every part beside it; the single-part requests add the model to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import BaseModel, Field

from transformer_math.analysis.efficiency import list_engines
from transformer_math.config.hardware import list_hardware
from transformer_math.errors import TmathError
from transformer_math.presets import list_presets

# Names the schema enumerates, so clients (and the fuzzer) see exactly what is accepted: never a path.
if TYPE_CHECKING:  # the lists are only known when the module runs
    PresetName: TypeAlias = str
    GpuId: TypeAlias = str
else:
    PresetName = Literal[tuple(list_presets())]
    GpuId = Literal[tuple(list_hardware())]
Recompute = Literal["none", "selective", "full"]
MAX_COMPARED = 8


class ErrorBody(BaseModel):
    """Every error the API answers (4xx and 5xx alike): what is wrong, and the request field it is about — a body
    field ("batch", "config.hidden_size"), or "body", "host", "path", "method", "server"."""

    detail: str
    field: str


ERRORS = {400: "refused before parsing: the Host header is not a name of this server, or a bad Content-Length",
          408: "body not received in time",
          413: "body over 1 MiB", 422: "invalid request: the field and what is allowed",
          500: "unexpected error (a bug): no traceback, logged by the server",
          503: "busy: every computation slot stayed taken; retry after Retry-After seconds"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, all ErrorBody (FastAPI would document its HTTPValidationError)."""
    return {c: {"model": ErrorBody, "description": ERRORS[c]} for c in codes}


READ = errors(400, 500)
POST = errors(400, 408, 413, 422, 500)
HEAVY = errors(400, 408, 413, 422, 500, 503)


class ModelInput(BaseModel):
    model: PresetName | None = Field(None, description="preset name (GET /api/presets)")
    config: dict[str, Any] | None = Field(None, description="a Hugging Face config.json object")

    def source(self) -> Any:
        if self.config is not None:
            return self.config
        if self.model is None:
            raise TmathError("model", None, "a preset name or a config object")
        return self.model


class AnalyzeOptions(BaseModel):
    batch: int = Field(1, ge=1, le=10**6)
    context: int = Field(2048, ge=1, le=10**7)
    weight_dtype: str = Field("auto", max_length=200)
    kv_dtype: str = Field("bf16", max_length=20)
    attention: Literal["dense", "causal"] = "dense"
    recompute: Recompute = "none"
    activations: Literal["fused", "eager", "reference"] = "fused"


class ServeOptions(BaseModel):
    gpu: GpuId = "h100-sxm"
    tp: int = Field(1, ge=1, le=64)
    dp: int = Field(1, ge=1, le=4096)
    ep: int = Field(1, ge=1, le=256)
    batch: int = Field(1, ge=1, le=4096)
    prompt: int = Field(1024, ge=1, le=10**6)
    gen: int = Field(256, ge=1, le=10**6)
    weight_dtype: str = Field("auto", max_length=200)
    kv_dtype: str = Field("bf16", max_length=20)
    engine: Literal[tuple(list_engines())] = "vllm"  # type: ignore[valid-type]
    block: int | None = Field(None, ge=1, le=1024)  # None: the engine's
    draft: PresetName | None = None
    draft_k: int = Field(4, ge=1, le=16)
    acceptance: float = Field(0.7, ge=0, lt=1)
    gpu_memory_utilization: float = Field(0.9, ge=0.05, le=1)


class TrainOptions(BaseModel):
    gpu: GpuId = "h100-sxm"
    gpus: int = Field(8, ge=1, le=65536)
    tp: int = Field(1, ge=1, le=64)
    pp: int = Field(1, ge=1, le=256)
    dp: int | None = Field(None, ge=1, le=65536)
    cp: int = Field(1, ge=1, le=64)
    ep: int = Field(1, ge=1, le=256)
    global_batch: int = Field(64, ge=1, le=10**6)
    seq: int = Field(4096, ge=1, le=10**6)
    micro_batch: int = Field(1, ge=1, le=1024)
    recompute: Recompute = "none"
    zero: Literal[0, 1, 2, 3] = 1
    sequence_parallel: bool | None = None
    interleave: int = Field(1, ge=1, le=64)
    schedule: Literal["1f1b", "gpipe"] = "1f1b"
    flash_attention: bool = True
    precision: Literal["bf16", "fp8"] = "bf16"
    optimizer: Literal["adamw", "adam8bit", "sgd", "adafactor"] = "adamw"
    finetune: Literal["full", "lora", "qlora"] = "full"
    lora_rank: int = Field(16, ge=1, le=4096)
    lora_targets: str = Field("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", max_length=200)
    tokens: float = Field(0, ge=0, le=1e16)
    price: float = Field(2.0, ge=0, le=1e4)
    search: bool = False


class AnalyzeRequest(ModelInput, AnalyzeOptions):
    pass


class ServeRequest(ModelInput, ServeOptions):
    pass


class CurveRequest(ServeRequest):
    contexts: list[int] = Field(default_factory=lambda: [256, 1024, 4096, 16384],
                                min_length=1, max_length=24)


class TrainRequest(ModelInput, TrainOptions):
    pass


class NamedConfig(BaseModel):
    """A config.json to compare, under the name its row shows (default: the config's `_name_or_path` or family)."""

    config: dict[str, Any] = Field(description="a Hugging Face config.json object")
    name: str | None = Field(None, max_length=100)


class CompareWith(BaseModel):
    """What to compare: presets and config.json objects, 1 to 8 in all (presets' rows first)."""

    models: list[PresetName] = Field(default_factory=list, max_length=MAX_COMPARED)
    configs: list[NamedConfig] = Field(default_factory=list, max_length=MAX_COMPARED)


class CompareRequest(CompareWith):
    batch: int = Field(1, ge=1, le=10**6)
    context: int = Field(2048, ge=1, le=10**7)
    kv_dtype: str = Field("bf16", max_length=20)
    weight_dtype: str = Field("auto", max_length=200)


class ViewRequest(ModelInput):
    """Everything the page shows for its inputs: the model once, each part's options beside it."""

    analyze: AnalyzeOptions = Field(default_factory=lambda: AnalyzeOptions.model_validate({}))
    serve: ServeOptions = Field(default_factory=lambda: ServeOptions.model_validate({}))
    train: TrainOptions = Field(default_factory=lambda: TrainOptions.model_validate({}))
    curve: list[int] = Field(default_factory=lambda: [256, 1024, 4096, 16384], max_length=8,
                             description="contexts of the memory/latency curve (serving options, prompt = context)")
    compare: CompareWith | None = Field(None, description="rows besides this model's (its batch, context and dtypes)")
