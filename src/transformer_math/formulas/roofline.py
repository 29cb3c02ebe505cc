"""Roofline (Williams, Waterman & Patterson 2009): arithmetic intensity, attainable time, bound."""

from transformer_math.formulas._registry import formula


@formula(id="roofline.intensity", symbol="I", unit="FLOPs/byte", expr="F / M_moved",
         source="Williams, Waterman & Patterson 2009 (Roofline, CACM 52(4)): operational intensity, the FLOPs done per "
                "byte of memory traffic")
def intensity(*, F: float, M_moved: float) -> float:
    return F / M_moved if M_moved else float("inf")


@formula(id="roofline.time", symbol="t_op", unit="s",
         expr="max(F / (η_compute·F_peak), M_moved / (η_bw·BW_HBM)) + t_dq + t_launch",
         source="Williams et al. 2009: attainable FLOP/s = min(peak, I·bandwidth), here with the achieved fractions η "
                "of both peaks; t_dq: CUDA-core work to dequantize weight-only "
                "formats in the load path; t_launch: fixed cost of the op's kernels")
def op_time(*, F: float, η_compute: float, F_peak: float, M_moved: float, η_bw: float, BW_HBM: float,
            t_dq: float = 0.0, t_launch: float) -> float:
    return max(F / (η_compute * F_peak), M_moved / (η_bw * BW_HBM)) + t_dq + t_launch
