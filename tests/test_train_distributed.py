"""Distributed training on 2 CPU processes (gloo) under torchrun: DDP, FSDP2 and tensor parallel
(transformer_math.training.distributed).

One torchrun launch per mode (`python -m torch.distributed.run --standalone --nproc-per-node 2`: a free port picked
by the rendezvous), the same tiny Llama (V = 17: odd, so FSDP2 splits the embedding and LM head 9 + 8 rows), the
same seed and global batches as a single-process Trainer. Checked:
1. DDP: both ranks hold bitwise-identical weights (each rank applies the same all-reduced gradient), and they equal
   the single-process run on the full global batch within fp32 rounding (the gradient sums run in another order).
2. FSDP2: each rank's parameter shard bytes, gradient bytes and AdamW moment bytes equal the exact FSDP2 formula
   (distributed.fsdp2_rank_bytes, torch.chunk on dim 0) and the analyzer's per-rank count (analysis.sharding:
   tensor_at / local_params with training_mesh(dp=2, sharded=True), formulas.memory.optimizer_bytes); TP's
   per-rank bytes equal the analyzer's tensor_at with Mesh(tp=2, vocab_tp=1).
3. The loss falls, and DDP, FSDP2, TP and the single process give the same losses and final weights (fp32).
Plus the pure pieces without processes: the shard formula against torch.chunk, config validation, rank slices.
"""

import json
import os
import subprocess
import sys

import pytest

import transformer_math as tm

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available in this torch build", allow_module_level=True)

from safetensors.torch import load_file

from transformer_math.analysis.sharding import Mesh, local_params, stage_tensors, tensor_at, training_mesh
from transformer_math.errors import TmathError
from transformer_math.formulas.memory import optimizer_bytes
from transformer_math.training import TokenBatches, TrainConfig, build_trainer
from transformer_math.training.distributed import (
    DistributedRun,
    backend_for,
    fsdp2_rank_bytes,
    fsdp2_shard_elements,
    rank_rows,
)

W = 2
MODEL = dict(model_type="llama", vocab_size=17, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64)
# 2 micro-batches of 8 sequences (4 per rank), warmup then cosine, clipping: DDP's no_sync / FSDP2's deferred
# reduce-scatter, the schedule and the global gradient norm all take part
TRAIN = dict(lr=2e-2, warmup_steps=2, total_steps=10, micro_batch=8, n_micro=2, seq_len=16, grad_clip=1.0, seed=3)
STEPS = 10
MODES = ("ddp", "fsdp2", "tp")
TIMEOUT_S = 120


def _launch(mode, out):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={W}",
           "-m", "transformer_math.training.distributed", "--model", json.dumps(MODEL), "--mode", mode,
           "--steps", str(STEPS), "--train", json.dumps(TRAIN), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "error"}  # 2 cores: one thread per rank
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert done.returncode == 0, f"{mode}: torchrun exited {done.returncode}\n{done.stderr[-4000:]}"
    result = json.loads((out / "result.json").read_text())
    weights = [load_file(str(out / f"model.rank{r}.safetensors")) for r in range(W)]
    return result, weights


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """mode → (rank 0's result.json, [each rank's full state dict])."""
    return {mode: _launch(mode, tmp_path_factory.mktemp(mode)) for mode in MODES}


@pytest.fixture(scope="module")
def single():
    """The single-process Trainer on the same global batches: (losses, state dict)."""
    trainer = build_trainer(tm.load_model(MODEL), TrainConfig(**TRAIN))
    losses = [e.loss for e in trainer.train_steps(STEPS)]
    return losses, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _max_diff(a, b):
    """(max |a − b|, max |a − b| / max |b|) over all tensors."""
    assert a.keys() == b.keys()
    abs_ = max(float((a[k] - b[k]).abs().max()) for k in a)
    scale = max(float(b[k].abs().max()) for k in b)
    return abs_, abs_ / scale


def test_ddp_ranks_identical_and_equal_to_one_process(runs, single):
    _, (w0, w1) = runs["ddp"]
    # bitwise: gloo's all-reduce hands every rank the same averaged gradient, and AdamW is deterministic
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    # the full-batch gradient Σℓ/N summed in another order (two half-batch matmuls + the all-reduce): fp32
    # rounding, amplified a little by AdamW's m/√v over 10 steps — measured max |Δθ| ≈ 1e-7…1e-6
    abs_diff, rel_diff = _max_diff(w0, single[1])
    assert abs_diff < 2e-6 and rel_diff < 1e-6, (abs_diff, rel_diff)
    assert runs["ddp"][0]["losses"] == pytest.approx(single[0], rel=1e-6, abs=0)


def test_fsdp2_bytes_per_rank_equal_formula_and_analyzer(runs):
    result, _ = runs["fsdp2"]
    spec = tm.load_model(MODEL)
    inventory = stage_tensors(spec, 1, 0)  # (tensor, copies): the whole model on one pipeline stage
    shapes = [t.shape for t, n in inventory for _ in range(n)]
    from transformer_math.reference import build

    model_shapes = [tuple(p.shape) for p in build(spec).parameters()]
    assert sorted(shapes) == sorted(model_shapes)  # the analyzer's inventory is the reference model's tensors
    b = 4  # fp32 parameters, gradients and moments
    P_rank0 = sum(local_params(spec, training_mesh(tp=1, ep=1, dp=W, cp=1, sharded=True)).values())
    n_params = len(model_shapes)
    for r, got in enumerate(rk["bytes"] for rk in result["ranks"]):
        exact, padded = fsdp2_rank_bytes(shapes, world=W, rank=r, element_size=b)
        analyzer = b * sum(n * tensor_at(t, Mesh(fsdp=W), {"tp": 0, "ep": 0, "fsdp": r, "efsdp": 0})
                           for t, n in inventory)
        assert got["params"] == exact == analyzer, (r, got, exact, analyzer)
        assert got["params_storage"] == padded  # FSDP2's storage: rank 0's chunk on every rank
        assert got["grads"] == exact  # reduce-scattered gradient shards (ZeRO-2/3)
        assert got["adam_moments"] == 2 * exact  # exp_avg and exp_avg_sq, shaped like the local shard
        # the 0-d step counters: one fp32 scalar per parameter on every rank — not in the analyzer (84 B here)
        assert got["adam_step"] == 4 * n_params
    # rank 0 holds the largest shard of every tensor: the analyzer's per-GPU number is rank 0's, exactly
    assert result["ranks"][0]["bytes"]["params"] == b * P_rank0
    assert optimizer_bytes(P_train=P_rank0, b_master=0, b_m=4, b_v=4) == result["ranks"][0]["bytes"]["adam_moments"]
    # the two shards add up to the whole model; the padding is what rank 1 lacks of rank 0's rows
    total = b * sum(t.numel * n for t, n in inventory)
    assert sum(rk["bytes"]["params"] for rk in result["ranks"]) == total
    assert result["ranks"][0]["bytes"]["params"] - result["ranks"][1]["bytes"]["params"] == b * 2 * 32  # 9 − 8 rows
    # every rank's prediction written by the run itself agrees
    assert all(rk["fsdp2_predicted"]["params"] == rk["bytes"]["params"] for rk in result["ranks"])


def test_tp_bytes_per_rank_equal_analyzer(runs):
    """TP over 2 ranks with the embedding and LM head whole (vocab_tp = 1 in the analyzer's Mesh): q/k/v/gate/up
    split by rows, o/down by columns, norms replicated — 35,712 B per rank of the model's 66,432 B."""
    spec = tm.load_model(MODEL)
    for r, rk in enumerate(runs["tp"][0]["ranks"]):
        analyzer = 4 * sum(n * tensor_at(t, Mesh(tp=W, vocab_tp=1), {"tp": r, "ep": 0, "fsdp": 0, "efsdp": 0})
                           for t, n in stage_tensors(spec, 1, 0))
        assert rk["bytes"]["params"] == rk["bytes"]["grads"] == analyzer == 35_712, (r, rk["bytes"])
        assert rk["bytes"]["adam_moments"] == 2 * analyzer


def test_losses_fall_and_agree_across_modes(runs, single):
    losses = {mode: runs[mode][0]["losses"] for mode in MODES}
    first, last = single[0][0], sum(single[0][-3:]) / 3
    assert last < 0.95 * first, single[0]  # ln 17 = 2.83; measured about 2.98 → 2.7
    for mode in MODES:
        assert losses[mode] == pytest.approx(single[0], rel=1e-6, abs=0), mode
        assert losses[mode] == pytest.approx(losses["ddp"], rel=1e-6, abs=0), mode
        w0, w1 = runs[mode][1]
        assert all(torch.equal(w0[k], w1[k]) for k in w0), mode  # gathered shards: the same on every rank
        abs_diff, rel_diff = _max_diff(w0, runs["ddp"][1][0])
        assert abs_diff < 2e-6 and rel_diff < 1e-6, (mode, abs_diff, rel_diff)
    ranks = runs["fsdp2"][0]["ranks"]
    assert ranks[0]["checksum"] == pytest.approx(runs["ddp"][0]["ranks"][0]["checksum"], rel=1e-6)


# ---- pure pieces, no processes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(17, 32), (5,), (1, 3), (0, 4), (48, 32), (3, 2, 2)])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_fsdp2_shard_elements_is_torch_chunk(shape, world):
    full = torch.empty(shape)
    chunks = torch.chunk(full, world, dim=0) if shape[0] else ()
    for r in range(world):
        local, padded = fsdp2_shard_elements(shape, world=world, rank=r)
        assert local == (chunks[r].numel() if r < len(chunks) else 0)
        assert padded == (chunks[0].numel() if chunks else 0)


def test_bad_settings_raise_tmath_errors():
    with pytest.raises(TmathError, match="mode"):
        DistributedRun(mode="zero3")
    with pytest.raises(TmathError, match="steps"):
        DistributedRun(steps=0)
    assert DistributedRun(mode="fsdp2", steps=3).mode == "fsdp2"


def test_rank_rows_split_the_global_batch():
    batch = TokenBatches(vocab_size=17, batch=8, seq_len=5, seed=1)(0)
    parts = [rank_rows(batch, r, 4) for r in range(4)]
    assert torch.equal(torch.cat([p.ids_BT for p in parts]), batch.ids_BT)
    assert all(p.ids_BT.shape == (2, 5) for p in parts)


def test_backend_follows_the_device():
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"
