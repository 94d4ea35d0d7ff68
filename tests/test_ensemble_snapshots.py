"""Tests of ``train_ensemble(..., snapshot_steps=...)``: generator copies kept along one run.

The reference for the snapshot after step ``s`` is an independent, shorter run that stops at step
``s`` (same members, same seeds): a member's draws depend only on its own seed and the steps taken,
so the shorter run's final generators are the longer run's generators after ``s`` steps, exactly
(float64, the same batched operations in the same order).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gan_lib.train import EnsembleConfig, MemberSpec, concat_results, train_ensemble


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def members():
    return [MemberSpec("kl_hinge", seed=3, regulariser="spectral_norm"),
            MemberSpec("ragan", seed=4, regulariser="spectral_norm"),
            MemberSpec("wgan", seed=5, regulariser="gp")]


def config(steps):
    return EnsembleConfig(batch_size=16, n_critic=2, steps=steps, width=8, dtype="float64")


X = torch.randn(40, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_snapshots_equal_shorter_runs():
    long = train_ensemble(members(), X, config(7), progress=False, snapshot_steps=[1, 3, 5])
    assert sorted(long.snapshots) == [1, 3, 5]
    for s in (1, 3, 5):
        short = train_ensemble(members(), X, config(s), progress=False)
        torch.testing.assert_close(long.sample(50, seed=9, step=s), short.sample(50, seed=9), rtol=0, atol=1e-12)
    # the final step needs no snapshot; a step that was not kept is refused
    torch.testing.assert_close(long.sample(20, seed=2, step=7), long.sample(20, seed=2), rtol=0, atol=0)
    with pytest.raises(ValueError, match="step=2"):
        long.sample(5, step=2)
    for seed in (-1, 2**64, 0.5):  # torch's seeds are 64-bit
        with pytest.raises(ValueError, match="seed="):
            long.sample(5, seed=seed)
    assert long.sample(5, seed=2**64 - 1).shape == (len(members()), 5, 2)
    # the snapshots do not move with later training: after step 1 the generators differ from the end
    assert not torch.allclose(long.sample(50, seed=9, step=1), long.sample(50, seed=9))


def test_snapshot_steps_validated_and_joined():
    with pytest.raises(ValueError, match="snapshot step"):
        train_ensemble(members(), X, config(3), progress=False, snapshot_steps=[4])
    with pytest.raises(TypeError, match="snapshot_steps"):
        train_ensemble(members(), X, config(3), progress=False, snapshot_steps=2)
    a = train_ensemble(members()[:2], X, config(3), progress=False, snapshot_steps=[1, 2])
    b = train_ensemble(members()[2:], X, config(3), progress=False, snapshot_steps=[2])
    joined = concat_results([a, b])
    assert sorted(joined.snapshots) == [2]
    both = torch.cat([a.sample(30, seed=1, step=2), b.sample(30, seed=1, step=2)])
    torch.testing.assert_close(joined.sample(30, seed=1, step=2), both, rtol=0, atol=0)


def test_state_dict_keeps_snapshots_and_loads_with_weights_only(tmp_path):
    from gan_lib.train import EnsembleResult

    long = train_ensemble(members(), X, config(5), progress=False, snapshot_steps=[2, 4])
    path = tmp_path / "ensemble.pt"
    torch.save(long.state_dict(), path)
    back = EnsembleResult.from_state_dict(torch.load(path))  # the default weights_only=True
    assert back.members == long.members and back.config == long.config and sorted(back.snapshots) == [2, 4]
    for s in (2, 4, 5):
        # the reference for step s: an independent run of s steps (module docstring)
        short = train_ensemble(members(), X, config(s), progress=False)
        torch.testing.assert_close(back.sample(40, seed=3, step=s), short.sample(40, seed=3), rtol=0, atol=1e-12)
    for name in ("step", "d_loss", "g_loss", "penalty"):
        assert (getattr(back.history, name) == getattr(long.history, name)).all()
    # numpy numbers, which the specs accept, are saved as Python numbers (weights_only refuses numpy)
    import numpy as np

    spec = MemberSpec("lsgan", seed=np.int64(2), loss_options={"a": np.float64(-1.0)}, lr_d=np.float64(1e-3))
    small = EnsembleConfig(batch_size=np.int64(16), n_critic=1, steps=1, width=4, dtype="float64")
    torch.save(train_ensemble([spec], X, small, progress=False).state_dict(), path)
    assert EnsembleResult.from_state_dict(torch.load(path)).members == (spec,)
    # a state saved before the specs became plain dicts (dataclasses, numpy history, no snapshots)
    old = long.state_dict()
    old.update(members=long.members, config=long.config, history=long.history.__dict__)
    del old["snapshots"]
    legacy = EnsembleResult.from_state_dict(old)
    assert legacy.members == long.members and legacy.snapshots == {}
    torch.testing.assert_close(legacy.sample(10, seed=1), long.sample(10, seed=1), rtol=0, atol=0)


def test_to_moves_snapshots_and_sample_edge_values():
    result = train_ensemble(members(), X, config(3), progress=False, snapshot_steps=[1])
    assert result.sample(0).shape == (3, 0, 2)  # no samples, as Dataset2D.sample(0)
    torch.manual_seed(5)
    drawn = result.sample(4, seed=None)  # torch's global generator: the reference draws from it directly
    torch.manual_seed(5)
    z = torch.randn(4, result.config.z_dim, dtype=torch.float64)
    torch.testing.assert_close(drawn, result.generator(z), rtol=0, atol=0)
    result.to("meta")
    for net in (result.generator, result.snapshots[1]):
        assert all(p.device.type == "meta" for p in net.parameters())


def test_a_loaded_result_shares_nothing_with_its_state():
    from gan_lib.train import EnsembleResult

    spec = MemberSpec("hinge", seed=4, regulariser="spectral_norm")
    state = train_ensemble([spec], X, config(2), progress=False).state_dict()
    loaded = EnsembleResult.from_state_dict(state)
    probe = torch.tensor([[0.3, -0.2], [1.0, 2.0]])
    values, g_loss = loaded.critic_values(probe), loaded.history.g_loss.copy()
    assert g_loss.any()
    # changing the dict afterwards (the power-iteration vectors, the history) leaves the result as it was
    state["history"]["g_loss"].zero_()
    state["sn_u"][0].mul_(-3.0)
    state["sn_v"][1].mul_(0.5)
    assert (loaded.history.g_loss == g_loss).all()
    torch.testing.assert_close(loaded.critic_values(probe), values, rtol=0, atol=0)


def test_result_methods_take_arrays_and_refuse_a_seed_given_as_generator():
    import numpy as np

    result = train_ensemble(members(), X, config(1), progress=False)
    x = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    for given in (x.numpy(), x.tolist(), x.double()):
        torch.testing.assert_close(result.critic_values(given), result.critic_values(x), rtol=0, atol=0)
    with pytest.raises(TypeError, match=r"generator=5 must be a torch.Generator or None; for a seed, pass seed="):
        result.sample(3, generator=5)
    assert result.sample(3, generator=torch.Generator().manual_seed(2)).shape == (len(members()), 3, 2)
    assert np.isfinite(result.critic_values(x).numpy()).all()


def test_joining_refuses_parts_of_other_data_dimensions_and_bool_positions():
    flat = train_ensemble([MemberSpec("hinge", seed=0)], X, config(1), progress=False)
    cube = train_ensemble([MemberSpec("hinge", seed=1)], torch.randn(64, 3, generator=torch.Generator().manual_seed(0)),
                          config(1), progress=False)
    with pytest.raises(ValueError, match=r"data of one dimension; their data dimensions are \[2, 3\]"):
        concat_results([flat, cube])
    for flags in ([[True], [False]], [[torch.tensor(True)], [torch.tensor(False)]]):
        with pytest.raises(ValueError, match="positions must be integers; got"):
            concat_results([flat, flat], flags)
    # a config given torch.device('cpu') is the config given 'cpu': results of both join
    as_device = train_ensemble([MemberSpec("hinge", seed=2)], X, dataclasses.replace(config(1), device=torch.device("cpu")),
                               progress=False)
    assert as_device.config.device == "cpu" and as_device.config == flat.config
    assert len(concat_results([flat, as_device])) == 2
