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


@pytest.mark.parametrize("world, done", [(1, 0), (2, 0), (2, 5), (3, 7), (4, 20), (3, 22)])
def test_rank_windows_deal_the_epochs_rest_once_in_global_batch_order(world, done):
    from dynforecast.train.distributed import rank_windows

    order = np.random.default_rng(world + done).permutation(22)
    parts = [rank_windows(order, done, DistContext(rank=r, world_size=world)) for r in range(world)]
    assert len({len(mine) for mine, _ in parts}) == 1  # every rank runs as many steps
    real = np.concatenate([mine[mask] for mine, mask in parts])
    assert sorted(real) == sorted(order[done:])  # each window exactly once
    batch = 3  # step i of all ranks = the positions [i B W, (i + 1) B W) of one process
    steps = -(-len(parts[0][0]) // batch)
    one_process = order[done:]
    for i in range(steps):
        got = np.concatenate([m[i * batch : (i + 1) * batch][k[i * batch : (i + 1) * batch]]
                              for m, k in parts])  # fmt: skip
        assert sorted(got) == sorted(one_process[i * batch * world : (i + 1) * batch * world])


def test_a_checkpoint_without_windows_done_resumes_at_its_batches_times_batch_size():
    from dynforecast.train.loop import FitState

    state = {"epoch": 2, "batch_in_epoch": 3, "partial_sums": [1.0, 2.0], "best_val": 0.5}
    state.update(best_epoch=1, bad_epochs=0, finished=False, history=[])
    assert FitState.from_checkpoint(state, batch_size=8).windows_done == 24
    assert FitState.from_checkpoint({**state, "windows_done": 13}, batch_size=8).windows_done == 13
