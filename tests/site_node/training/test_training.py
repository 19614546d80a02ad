"""The training step, data confinement, device choice and the privacy helpers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from common.config import TrainingPrivacy
from common.errors import PermissionDeniedError, PrivacyError
from site_node.training.client_loop import epoch_span
from site_node.training.data import load_datalist, make_loaders
from site_node.training.device import select_device
from site_node.training.engine import evaluate, scheduled_lr, train_epochs
from site_node.training.model import SegUNet
from site_node.training.privacy_filter import apply_privacy, exclude_variables
from site_node.training.toy_data import write_toy_curated

PATCH = (16, 16, 16)


@pytest.fixture
def curated(tmp_path: Path) -> Path:
    return write_toy_curated(tmp_path / "home", patients=4, seed=3, shape=(24, 24, 16))


@pytest.mark.slow
def test_training_step_on_a_tiny_volume_decreases_the_loss(curated: Path) -> None:
    torch.manual_seed(0)
    train, val, n_train = make_loaders(curated, PATCH, batch_size=2)
    model = SegUNet(channels=(4, 8))
    device = torch.device("cpu")
    first = train_epochs(model, train, epochs=1, lr=1e-2, device=device)
    later = train_epochs(model, train, epochs=6, lr=1e-2, device=device)
    assert n_train == 3
    assert later.last_loss < first.first_loss
    dice = evaluate(model, val, device=device, patch=PATCH)
    assert 0.0 <= dice <= 1.0


@pytest.mark.parametrize(
    ("schedule", "epoch", "total", "expected"),
    [
        ("constant", 0, 10, 0.01),
        ("constant", 9, 10, 0.01),
        ("cosine", 0, 10, 0.01),
        ("cosine", 5, 10, 0.005),
        ("cosine", 10, 10, 0.0),
        ("cosine", 12, 10, 0.0),
    ],
)
def test_scheduled_lr(schedule: str, epoch: int, total: int, expected: float) -> None:
    assert scheduled_lr(0.01, schedule, epoch, total) == pytest.approx(expected, abs=1e-12)


def test_scheduled_lr_refuses_an_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="lr_schedule"):
        scheduled_lr(0.01, "step", 0, 10)


@pytest.mark.parametrize(
    ("current", "start", "total_rounds", "expected"),
    [(0, 0, 4, (0, 12)), (3, 0, 4, (9, 12)), (5, 2, 4, (9, 12)), (1, None, None, (3, None))],
)
def test_epoch_span_counts_the_epochs_of_earlier_rounds(
    current: int, start: int | None, total_rounds: int | None, expected: tuple[int, int | None]
) -> None:
    # the attributes the Client API's FLModel carries
    incoming = SimpleNamespace(current_round=current, start_round=start, total_rounds=total_rounds)
    assert epoch_span(incoming, 3) == expected


def test_a_federated_client_follows_the_same_lr_curve_as_one_long_run(curated: Path) -> None:
    train, _, _ = make_loaders(curated, PATCH)
    model = SegUNet(channels=(4, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seen = []
    for round_ in range(3):
        train_epochs(
            model,
            train,
            epochs=1,
            lr=1e-2,
            device=torch.device("cpu"),
            optimizer=optimizer,
            lr_schedule="cosine",
            first_epoch=round_,
            total_epochs=3,
        )
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([scheduled_lr(1e-2, "cosine", e, 3) for e in range(3)])


def test_model_keeps_constructor_args_on_self() -> None:
    model = SegUNet(channels=(4, 8), num_res_units=0)
    assert model.channels == [4, 8] and model.num_res_units == 0 and model.in_channels == 1
    out = model(torch.zeros(1, 1, 16, 16, 16))
    assert out.shape == (1, 2, 16, 16, 16)


def test_fedprox_term_pulls_towards_the_anchor(curated: Path) -> None:
    train, _, _ = make_loaders(curated, PATCH)
    model = SegUNet(channels=(4, 8))
    anchor = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_epochs(model, train, epochs=1, lr=1e-2, device=torch.device("cpu"), anchor=anchor, mu=0.1)
    assert result.steps > 0


def test_datalist_entries_outside_the_curated_folder_are_refused(tmp_path: Path, curated: Path) -> None:
    other = write_toy_curated(tmp_path / "site-b", patients=2, seed=9)
    datalist = json.loads((curated / "datalist.json").read_text())
    datalist["training"][0]["image"] = str(other / "images" / "0000.nii.gz")
    (curated / "datalist.json").write_text(json.dumps(datalist))
    with pytest.raises(PermissionDeniedError, match="outside the site's curated folder"):
        load_datalist(curated)
    datalist["training"][0]["image"] = "../../site-b/curated/images/0000.nii.gz"
    (curated / "datalist.json").write_text(json.dumps(datalist))
    with pytest.raises(PermissionDeniedError):
        load_datalist(curated)


def test_device_selection_says_which(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    device = select_device()
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert f"training on {device.type}" in caplog.text
    assert select_device("cpu").type == "cpu"


def test_exclude_vars_and_percentile_privacy() -> None:
    data = {"net.a.weight": np.arange(10, dtype=np.float32) / 100, "net.b.bias": np.ones(3, dtype=np.float32)}
    assert list(exclude_variables(data, r"\.bias$")) == ["net.a.weight"]
    privacy = TrainingPrivacy(percentile=50, gamma=0.05)
    out = apply_privacy("WEIGHT_DIFF", {"w": torch.arange(10, dtype=torch.float32) / 100}, privacy)
    assert isinstance(out["w"], torch.Tensor)
    assert int((out["w"] == 0).sum()) == 5 and float(out["w"].max()) == pytest.approx(0.05)
    with pytest.raises(PrivacyError):
        apply_privacy("WEIGHTS", data, privacy)


def test_invalid_exclude_vars_regex_is_a_config_error() -> None:
    with pytest.raises(ValueError):
        TrainingPrivacy(exclude_vars="([")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_uses_cuda_when_available(curated: Path) -> None:
    device = select_device()
    assert device.type == "cuda"
    train, val, _ = make_loaders(curated, PATCH)
    model = SegUNet(channels=(4, 8))
    result = train_epochs(model, train, epochs=1, lr=1e-2, device=device)
    assert result.steps > 0 and next(model.parameters()).is_cuda
    assert 0.0 <= evaluate(model, val, device=device, patch=PATCH) <= 1.0
