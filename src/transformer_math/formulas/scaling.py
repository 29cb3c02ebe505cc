"""Compute-optimal sizing (Hoffmann et al. 2022, 'Chinchilla', arXiv 2203.15556)."""

from transformer_math.formulas._registry import formula

# Approach 3's fitted loss L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, Eq. 10)
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


@formula(id="scaling.train_flops", symbol="C", unit="FLOPs", expr="6·N·D",
         source="Hoffmann et al. 2022 §3.3 (after Kaplan et al. 2020): C ≈ 6ND")
def train_flops(*, N: float, D: float) -> float:
    return 6 * N * D


@formula(id="scaling.n_opt", symbol="N_opt", unit="parameters", expr="G·(C/6)^(β/(α+β)), G = (α·A/(β·B))^(1/(α+β))",
         source="Hoffmann et al. 2022 Eq. 4 with Approach 3's fit (E=1.69, A=406.4, B=410.7, α=0.34, β=0.28)")
def n_opt(*, C: float, α: float, β: float, A: float, B: float) -> float:
    G = (α * A / (β * B)) ** (1 / (α + β))
    return G * (C / 6) ** (β / (α + β))


@formula(id="scaling.loss", symbol="L", unit="nats/token", expr="E + A/N^α + B/D^β",
         source="Hoffmann et al. 2022 Eq. 2 / Approach 3")
def chinchilla_loss(*, N: float, D: float, E: float, A: float, B: float, α: float, β: float) -> float:
    return E + A / N**α + B / D**β
