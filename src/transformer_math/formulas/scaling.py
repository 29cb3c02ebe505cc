"""Compute-optimal sizing (Hoffmann et al. 2022, 'Chinchilla', arXiv 2203.15556)."""

from transformer_math.formulas._registry import formula

# Approach 3's fitted loss L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, Eq. 10)
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


@formula(id="scaling.n_opt", symbol="N_opt", unit="parameters", expr="G·(C/6)^(β/(α+β)), G = (α·A/(β·B))^(1/(α+β))",
         source="Hoffmann et al. 2022 Eq. 4 with Approach 3's fit (E=1.69, A=406.4, B=410.7, α=0.34, β=0.28)")
def n_opt(*, C: float, α: float, β: float, A: float, B: float) -> float:
    G = (α * A / (β * B)) ** (1 / (α + β))
    return float(G * (C / 6) ** (β / (α + β)))


@formula(id="scaling.loss", symbol="L(N,D)", unit="nats/token", expr="E + A/N^α + B/D^β",
         source="Hoffmann et al. 2022 Eq. 2 / Approach 3")
def chinchilla_loss(*, N: float, D: float, E: float, A: float, B: float, α: float, β: float) -> float:
    return float(E + A / N**α + B / D**β)


@formula(id="scaling.d_opt", symbol="D_opt", unit="tokens", expr="C / (6·N_opt)",
         source="Hoffmann et al. 2022 §3.3: the tokens that spend C at N_opt parameters, C = 6·N·D")
def d_opt(*, C: float, N_opt: float) -> float:
    return C / (6 * N_opt)


@formula(id="scaling.n_rule_of_thumb", symbol="N_20", unit="parameters", expr="(C / 120)^(1/2)",
         source="Hoffmann et al. 2022 Table 3 (Approaches 1 and 2): D ≈ 20·N, so C = 6·N·20·N")
def n_rule_of_thumb(*, C: float) -> float:
    return float((C / 120) ** 0.5)


@formula(id="scaling.gpu_hours", symbol="GPU_h", unit="GPU-hours", expr="C / (MFU·F_peak) / 3600",
         source="C = 6·N·D (Kaplan et al. 2020 §2.1; Hoffmann et al. 2022 §3.3) over the achieved FLOP/s MFU·F_peak; "
                "MFU as PaLM §4.1 defines it")
def gpu_hours(*, C: float, MFU: float, F_peak: float) -> float:
    return C / (MFU * F_peak) / 3600


@formula(id="scaling.cost", symbol="cost", unit="USD", expr="GPU_h·price", source="GPU-hours × price per GPU-hour")
def cost(*, GPU_h: float, price: float) -> float:
    return GPU_h * price
