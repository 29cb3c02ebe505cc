"""Quantized storage formats [bytes]: ggml block formats (GGUF) and per-tensor scales (NVFP4)."""

from transformer_math.formulas._registry import formula

GGML_COMMON = "ggml/src/ggml-common.h (ggml-org/llama.cpp @ 01243c587feceaa5d6a6c2305535ef2f549c48b8)"


@formula(id="memory.weights_ggml_block", symbol="M_param", unit="bytes", expr="P/g_blk·S_blk",
         source=f"{GGML_COMMON}: a ggml type stores g_blk weights (32, or QK_K = 256 for k-quants) in one block struct "
                "of S_blk bytes (block_q4_K: 144, block_q6_K: 210, block_q8_0: 34, …); llama-quantize picks the type "
                "of "
                "each tensor (src/llama-quant.cpp llama_tensor_get_type)")
def block_weight_bytes(*, P: int, g_blk: int, S_blk: int) -> int:
    return -(-P // g_blk) * S_blk


@formula(id="memory.tensor_scales", symbol="M_scale", unit="bytes", expr="n_t·b_ts",
         source="NVFP4 two-level scaling: besides one FP8 E4M3 scale per 16 values, every tensor carries one fp32 "
                "global scale (b_ts = 4 bytes; TensorRT Model Optimizer checkpoints: weight_scale_2)")
def tensor_scale_bytes(*, n_t: int, b_ts: int) -> int:
    return n_t * b_ts
