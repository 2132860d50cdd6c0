"""DDP helpers: window sharding, and a two-process CPU (gloo) run whose ranks stay in sync."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from dynforecast.train.distributed import DistContext, shard, shard_exact


def test_shard_gives_every_rank_the_same_number_of_steps():
    ids = np.arange(10)
    parts = [shard(ids, DistContext(rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]
    assert set(np.concatenate(parts)) == set(ids)
    exact = [shard_exact(ids, DistContext(rank=r, world_size=3)) for r in range(3)]
    assert sorted(np.concatenate(exact)) == list(ids)
    assert shard(ids, DistContext()) is ids


def _worker(rank: int, world_size: int, port: int, run_dir: str, out: str) -> None:
    from pathlib import Path

    from train_fakes import DriftDataset, DriftModel, splits_of

    from dynforecast.train.config import config_from_dict
    from dynforecast.train.distributed import init_from_env
    from dynforecast.train.loop import fit

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank)
    )
    torch.set_num_threads(1)
    context = init_from_env(torch.device("cpu"))
    torch.manual_seed(0)
    dataset, model = DriftDataset(), DriftModel()
    config = config_from_dict({"optim": {"lr": 0.05, "epochs": 2, "batch_size": 7}})
    result = fit(
        model, dataset, splits_of(dataset), config, Path(run_dir), n_systems=6,
        device=torch.device("cpu"), context=context,
    )  # fmt: skip
    torch.save({"weight": model.weight.detach(), "val": result.history[-1]["val_mse"]}, out)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_train_in_sync_and_only_rank_0_writes(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outs = [str(tmp_path / f"rank{r}.pt") for r in range(2)]
    runs = [str(tmp_path / f"run{r}") for r in range(2)]
    context = mp.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(r, 2, port, runs[r], outs[r])) for r in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    first, second = (torch.load(o) for o in outs)
    assert torch.equal(first["weight"], second["weight"])
    assert first["val"] == second["val"]
    assert sorted(os.listdir(runs[0])) == ["best.pt", "last.pt", "metrics.csv"]
    assert not os.path.exists(runs[1])
