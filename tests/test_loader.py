import numpy as np
import pytest
import torch

from horseshoe.data import BatchLoader, DataConfig, build_dataset

CONFIG = DataConfig(count=10, hflip=True, vflip=True, rot90=True)
DATA = build_dataset(CONFIG)


def test_resume_continues_with_exactly_the_next_batch():
    full = BatchLoader(DATA, CONFIG, batch_size=4, seed=3)
    expected = [full.next_batch() for _ in range(7)]
    first = BatchLoader(DATA, CONFIG, batch_size=4, seed=3)
    for _ in range(3):
        first.next_batch()
    state = first.state_dict()
    resumed = BatchLoader(DATA, CONFIG, batch_size=4, seed=3)
    resumed.load_state_dict(state)
    got = [resumed.next_batch() for _ in range(4)]
    for a, b in zip(expected[3:], got, strict=True):
        assert torch.equal(a, b)


def test_each_epoch_is_a_permutation_and_big_batches_repeat():
    loader = BatchLoader(DATA, CONFIG, batch_size=25, seed=0)  # batch larger than the 10 images
    idx = loader.indices(0)
    assert len(idx) == 25
    assert sorted(idx[:10]) == list(range(10)) and sorted(idx[10:20]) == list(range(10))
    assert loader.epochs_done() == 0.0
    loader.next_batch()
    assert loader.epochs_done() == 2.5
    assert not np.array_equal(loader.indices(0)[:10], loader.indices(0)[10:20])  # new order per epoch


def test_ranks_split_the_global_batch_exactly():
    single = BatchLoader(DATA, CONFIG, batch_size=6, seed=1)
    ranks = [BatchLoader(DATA, CONFIG, batch_size=6, seed=1, rank=r, world_size=3) for r in range(3)]
    for _ in range(4):
        whole = single.next_batch()
        assert torch.equal(whole, torch.cat([r.next_batch() for r in ranks]))


def test_loader_errors():
    with pytest.raises(ValueError, match="batch size 5 is not divisible by the 2 processes"):
        BatchLoader(DATA, CONFIG, batch_size=5, world_size=2)
    loader = BatchLoader(DATA, CONFIG, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="saved for batch size 8 and seed 0, not 4 and 0"):
        loader.load_state_dict({"position": 2, "seed": 0, "batch_size": 8})
