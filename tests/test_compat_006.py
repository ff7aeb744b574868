"""diluvian 0.0.6's documented Python API and behaviours, called as 0.0.6's docs show them.

Each test uses small synthetic data; the numbers asserted are those 0.0.6's
documented behaviour implies.
"""

import csv
import inspect
import logging
import types

import numpy as np
import pytest

from diluvian.util import DiluvianError

# 0.0.6's conf/default.toml, reconstructed from its configuration reference
# (it still carried the retired [network] unet_num_layers and [optimizer] lr).
DEFAULT_006 = """\
random_seed = 0

[volume]
resolution = [40, 4, 4]

[model]
input_fov_shape = [17, 33, 33]
output_fov_shape = [17, 33, 33]
output_fov_move_fraction = 4
v_true = 0.95
v_false = 0.05
t_move = 0.9
move_check_thickness = 1
move_priority = "descending"
move_recheck = true
training_subv_shape = [17, 65, 65]
validation_subv_shape = [17, 65, 65]

[network]
factory = "diluvian.network.make_flood_fill_unet"
transpose = false
rescale_image = false
num_modules = 8
num_layers_per_module = 2
convolution_dim = [3, 3, 3]
convolution_filters = 32
convolution_activation = "relu"
convolution_padding = "same"
initialization = "glorot_uniform"
output_activation = "sigmoid"
dropout_probability = 0.0
batch_normalization = false
unet_num_layers = 4
unet_depth = 4
unet_downsample_rate = [0, 1, 1]
unet_downsample_mode = "fixed_rate"

[optimizer]
klass = "SGD"
loss = "binary_crossentropy"
lr = 0.01
momentum = 0.5
nesterov = true

[training]
num_gpus = 1
num_workers = 4
gpu_batch_size = 8
training_size = 256
validation_size = 256
total_epochs = 100
reset_generators = false
fill_factor_bins = [0.075, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
partitions = {".*" = [2, 1, 1]}
training_partition = {".*" = [0, 0, 0]}
validation_partition = {".*" = [1, 0, 0]}
validation_metric = {metric = "diluvian.util.binary_f_score", threshold = true, mode = "max", \
args = {beta = 0.5}}
patience = 20
label_erosion = [0, 1, 1]
relabel_seed_component = false
augment_validation = true
augment_use_both = true
augment_mirrors = [0, 1, 2]
augment_permute_axes = [[0, 2, 1]]
augment_missing_data = [{axis = 0, prob = 0.01}]
augment_noise = [{axis = 0, mul = 0.1, add = 0.1}]
augment_contrast = [{axis = 0, prob = 0.05, scaling_mean = 0.5, scaling_std = 0.1, \
center_mean = 1.2, center_std = 0.2}]
augment_artifacts = []

[postprocessing]
closing_shape = [1, 3, 3]
"""


# --------------------------------------------------------------------------- config
def test_006_default_config_loads_with_lr_alias_and_retired_key_warning(tmp_path, caplog):
    from diluvian.config import Config

    path = tmp_path / "default006.toml"
    path.write_text(DEFAULT_006)
    with caplog.at_level(logging.WARNING, logger="diluvian.config"):
        config = Config.from_toml(str(path))
    assert config.optimizer.kwargs["learning_rate"] == 0.01
    assert "lr" not in config.optimizer.kwargs
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unet_num_layers" in warnings[0]
    assert "\n" not in warnings[0]
    assert config.network.unet_depth == 4
    assert config.model.move_step.tolist() == [4, 8, 8]


def test_006_lr_overrides_default_learning_rate_and_unknown_keys_stay_errors():
    from diluvian.config import Config

    assert Config([{"optimizer": {"lr": 0.5}}]).optimizer.kwargs["learning_rate"] == 0.5
    with pytest.raises(DiluvianError, match="bogus"):
        Config([{"network": {"bogus": 1}}])
    with pytest.raises(DiluvianError, match="lrr"):
        Config([{"model": {"lrr": 1}}])


def test_006_config_compiles_an_optimizer_with_lr(tmp_path):
    keras = pytest.importorskip("keras")
    from diluvian.config import Config
    from diluvian.network import compile_network

    path = tmp_path / "c.toml"
    path.write_text(DEFAULT_006)
    config = Config.from_toml(str(path))
    inp = keras.Input((2, 2, 2, 1))
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(inp))
    compile_network(model, config.optimizer)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    x = np.zeros((1, 2, 2, 2, 1), np.float32)
    assert np.isfinite(model.train_on_batch(x, x + 0.5))


# --------------------------------------------------------------------------- util
def test_006_util_helpers():
    from diluvian.util import (
        Roundrobin,
        confusion_f_score,
        extend_keras_history,
        get_color_shader,
        pad_dims,
    )

    assert pad_dims(np.zeros((3, 4, 5))).shape == (1, 3, 4, 5, 1)
    assert list(Roundrobin("AB", "C", "DEF")) == list("ACDBEF")
    assert "emitRGB(vec3(0.0, 1.0, 0.0)" in get_color_shader(1)
    # Our F-beta: (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP); 0.0.6's formula was wrong.
    cm = np.array([[10, 2], [4, 6]])  # [[TN, FP], [FN, TP]]
    assert confusion_f_score(cm, 0.5) == pytest.approx(1.25 * 6 / (1.25 * 6 + 0.25 * 4 + 2))
    a = types.SimpleNamespace(epoch=[0], history={"loss": [1.0]})
    b = types.SimpleNamespace(epoch=[1], history={"loss": [0.5], "val_loss": [0.7]})
    extend_keras_history(a, b)
    assert a.epoch == [0, 1] and a.history["loss"] == [1.0, 0.5]
    assert a.history["val_loss"] == [0.7]


def test_006_write_keras_history_to_csv(tmp_path):
    from diluvian.util import write_keras_history_to_csv

    h = types.SimpleNamespace(epoch=[0, 1], history={"loss": [1.0, 0.5], "val_loss": [2.0, 1.0]})
    write_keras_history_to_csv(h, tmp_path / "h.csv")
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert [float(r["loss"]) for r in rows] == [1.0, 0.5]
    assert [int(r["epoch"]) for r in rows] == [0, 1]


def test_006_wrapped_viewer_takes_voxel_coordinates():
    pytest.importorskip("neuroglancer")
    from diluvian.util import WrappedViewer

    viewer = WrappedViewer(voxel_coordinates=[1, 2, 3])
    assert [float(v) for v in viewer.viewer.state.position] == [1, 2, 3]


# --------------------------------------------------------------------------- moves
def test_006_region_get_moves_slab_thickness_read_at_each_call():
    from diluvian.config import Config
    from diluvian.regions import Region

    config = Config([{"model": {"input_fov_shape": [9, 9, 9], "output_fov_shape": [9, 9, 9],
                                "output_fov_move_fraction": 4}}])
    region = Region(np.zeros((20, 20, 20), np.uint8), model_config=config.model)
    delta = int(region.MOVE_DELTA[0])
    assert delta == 2
    c = 4
    mask = np.zeros((9, 9, 9), np.float32)
    mask[c + delta + 1, c - delta, c + delta] = 0.8  # just outside +Z, at a face corner
    mask[c - delta + 1, c, c] = 0.6  # just inside -Z
    moves = region.get_moves(mask)
    assert [m["move"].tolist() for m in moves][:2] == [[1, 0, 0], [-1, 0, 0]]
    assert moves[0]["v"] == 0.0 and moves[1]["v"] == 0.0
    region.move_check_thickness = 2  # slab of 3 voxels centred on each plane
    moves = region.get_moves(mask)
    assert moves[0]["v"] == pytest.approx(0.8) and moves[1]["v"] == pytest.approx(0.6)
    # Laterally the whole face (centre +- MOVE_DELTA) counts, no further.
    mask[:] = 0
    mask[c + delta, c + delta + 1, c] = 0.9
    assert region.get_moves(mask)[0]["v"] == 0.0


# --------------------------------------------------------------------------- facade
def test_006_diluvian_entry_point_signatures():
    from diluvian import diluvian

    params = inspect.signature(diluvian.fill_volume_with_model).parameters
    assert list(params) == [
        "model_file", "volume", "resume_prediction", "checkpoint_filename",
        "checkpoint_label_interval", "seed_generator", "background_label_id", "bias",
        "move_batch_size", "max_moves", "max_bodies", "num_workers", "worker_prequeue",
        "filter_seeds_by_mask", "reject_non_seed_components", "reject_early_termination",
        "remask_interval", "shuffle_seeds"]
    assert params["checkpoint_label_interval"].default == 20
    assert list(inspect.signature(diluvian.evaluate_volume).parameters) == [
        "volumes", "gt_name", "pred_name", "partition", "border_threshold", "use_gt_mask",
        "relabel"]
    gen = inspect.signature(diluvian.generate_subvolume_bounds).parameters
    assert gen["sparse"].default is False and gen["moves"].default is None
    assert inspect.signature(diluvian.fill_region_with_model).parameters["sparse"].default \
        is False


def _boxes_volume():
    from diluvian.volumes import NdarrayVolume

    labels = np.zeros((4, 16, 16), np.uint64)
    labels[:, 2:7, 2:14] = 1
    labels[:, 9:14, 2:14] = 2
    image = np.where(labels > 0, 200, 20).astype(np.uint8)
    return NdarrayVolume((40, 4, 4), image_data=image, label_data=labels)


def test_006_fill_volume_with_model_accepts_a_model_object():
    from diluvian import diluvian
    from diluvian.config import CONFIG

    volume = _boxes_volume()
    image = np.asarray(volume.image_data[...]) / 256.0

    def oracle(images, masks):  # fills bright voxels
        out_shape = tuple(int(s) for s in CONFIG.model.output_fov_shape)
        crop = tuple(slice((a - b) // 2, (a - b) // 2 + b)
                     for a, b in zip(images.shape[1:4], out_shape))
        return np.where(images[(slice(None), *crop)] > 0.5, 0.95, 0.05).astype(np.float32)

    assert image.max() > 0.5
    labels = diluvian.fill_volume_with_model(oracle, volume, seed_generator="grid",
                                             shuffle_seeds=False, max_bodies=5)
    assert labels.shape == (4, 16, 16)
    assert len(np.unique(labels[volume.label_data[...] == 1])) == 1
    assert labels[0, 0, 0] == 0


def test_006_evaluate_volume_relabel_and_gt_mask():
    from diluvian import diluvian
    from diluvian.volumes import NdarrayVolume

    gt = np.zeros((2, 8, 8), np.uint64)
    gt[:, :, :4] = 1
    gt[:, :, 4:] = 2
    pred = gt.copy()
    split = gt.copy()
    split[:, :, 5:] = 1  # label 1 in two pieces: relabelling separates them
    volumes = {"gt": NdarrayVolume((40, 4, 4), label_data=gt),
               "pred": NdarrayVolume((40, 4, 4), label_data=pred),
               "odd": NdarrayVolume((40, 4, 4), label_data=split)}
    exact = diluvian.evaluate_volume(volumes, "gt", "pred")
    assert exact["voi_split"] == pytest.approx(0.0) and exact["voi_merge"] == pytest.approx(0.0)
    merged = diluvian.evaluate_volume(volumes, "gt", "odd")
    relabelled = diluvian.evaluate_volume(volumes, "gt", "odd", relabel=True)
    assert relabelled["voi_merge"] < merged["voi_merge"]


# --------------------------------------------------------------------------- octrees
def test_006_octree_indexing_fullness_and_leaf_bounds():
    from diluvian.octrees import BranchNode, LeafNode, OctreeVolume

    ot = OctreeVolume([4, 4, 4], [[0, 0, 0], [10, 10, 10]], "float32")
    ot[7:9, 4:6, 4] = np.ones((2, 2, 1), np.float32)
    assert ot[7:9, 4:6, 4].shape == (2, 2, 1)
    assert ot[1, 2, 3].shape == (1, 1, 1)
    assert ot.get_volume() is ot
    root = ot.root_node
    assert root is ot.root and isinstance(root, BranchNode)
    # Leaves touched: z 4-8 and 8-10, y 4-8, x 4-8 -> 2 dense leaves of 3 * 3 * 3 cells.
    assert root.count_leaves() == 2
    assert ot.fullness() == pytest.approx(2 / 27)
    lo, hi = ot.get_leaf_bounds()
    assert lo.tolist() == [4, 4, 4] and hi.tolist() == [10, 8, 8]  # clipped to bounds
    child = root.children[1][0][0]  # z offset 8
    assert child.start == (8, 0, 0)
    np.testing.assert_array_equal(root.get_child_bounds(1, 1, 1)[0], [8, 8, 8])
    np.testing.assert_array_equal(root.get_child_bounds(1, 1, 1)[1], [10, 10, 10])
    mask = root.get_children_mask(ot.get_checked_np_key((slice(7, 9), slice(4, 6), 4)))
    assert mask.tolist() == [[[True, False], [False, False]], [[True, False], [False, False]]]
    leaves = list(root.iter_leaves())
    assert len(leaves) == 2 and all(isinstance(leaf, LeafNode) for leaf in leaves)
    assert leaves[0].get_size().tolist() == [4, 4, 4]
    lo, hi = leaves[0].get_intersection([[0, 0, 0], [6, 5, 100]])
    assert lo.tolist() == [4, 4, 4] and hi.tolist() == [6, 5, 8]
    np.testing.assert_array_equal(leaves[0].get_volume(), ot[4:8, 4:8, 4:8])
    with pytest.raises(IndexError):
        ot.get_checked_np_key((slice(0, 11), 0, 0))


def test_006_octree_replace_populate_and_map_copy():
    from diluvian.octrees import OctreeVolume, UniformBranchNode

    ot = OctreeVolume([2, 2, 2], [[0, 0, 0], [4, 4, 4]], "int32",
                      populator=lambda b: np.full(tuple(b[1] - b[0]), 3, np.int32))
    root = ot.root_node
    assert ot[0, 0, 0].tolist() == [[[3]]]  # populates one leaf
    root = ot.root_node
    leaf = root.populate_child(1, 1, 1)
    assert leaf.count_leaves() == 1 and leaf.get_volume().sum() == 24
    replacement = UniformBranchNode(None, 0, 0, (0, 0, 0), (0, 0, 0), 7)
    leaf.replace(replacement)
    assert root.children[1][1][1] is replacement
    assert ot[2:4, 2:4, 2:4].tolist() == np.full((2, 2, 2), 7).tolist()
    assert root.count_leaves() == 1
    doubled = ot.map_copy(np.int64, lambda d: d * 2, lambda v: v * 2)
    assert doubled[3, 3, 3].item() == 14 and doubled[0, 0, 0].item() == 6
    copy = root.map_copy(doubled, lambda d: d + 1, lambda v: v + 1)
    assert copy.tree is doubled and copy.children[1][1][1].value == 8


# --------------------------------------------------------------------------- names
def test_006_regions_names():
    from diluvian.config import Config
    from diluvian.regions import EarlyFillTermination, Region, mask_to_output_target

    target = mask_to_output_target(np.array([True, False]), 0.95, 0.05)
    np.testing.assert_allclose(target, [0.95, 0.05])
    assert issubclass(EarlyFillTermination, DiluvianError)
    config = Config([{"model": {"input_fov_shape": [9, 9, 9], "output_fov_shape": [9, 9, 9]}}])
    region = Region(np.zeros((20, 20, 20), np.uint8), model_config=config.model)
    assert region.get_move_priority((1, 0, 0), 0.9) == pytest.approx(0.9)  # descending
    assert region.get_move_priority({"pos": (0, 1, 0), "v": 0.7}) == pytest.approx(0.7)
    assert callable(region.get_viewer) and callable(region.fill_render)


def test_006_region_render_body_and_fill_render(tmp_path):
    from diluvian.config import Config
    from diluvian.regions import Region

    config = Config([{"model": {"input_fov_shape": [5, 5, 5], "output_fov_shape": [5, 5, 5],
                                "output_fov_move_fraction": 2}}])
    image = np.zeros((9, 9, 9), np.uint8)
    image[2:7, 2:7, 2:7] = 200
    region = Region(image, model_config=config.model)

    def oracle(images, masks):
        return np.where(images > 0.5, 0.95, 0.05).astype(np.float32)

    region.fill_render(oracle)
    assert region.get_final_mask().sum() == 125
    fig = region.render_body(tmp_path / "body.png")
    assert (tmp_path / "body.png").stat().st_size > 0 and fig is not None


def test_006_postprocessing_skeleton_names():
    pytest.importorskip("kimimaro")
    from diluvian.postprocessing import skeleton_to_swc, skeletonize_component

    component = np.zeros((5, 5, 30), bool)
    component[1:4, 1:4, 2:28] = True
    skeleton = skeletonize_component(component, resolution=(4, 4, 4))
    assert skeleton is not None and len(skeleton.vertices) > 2
    swc = skeleton_to_swc(skeleton, offset=(0, 0, 10), resolution=(4, 4, 4))
    rows = [line.split() for line in swc.splitlines() if line and not line.startswith("#")]
    xs = [float(r[2]) for r in rows]
    assert min(xs) >= 40.0 + 2 * 4 - 1e-3  # shifted by 10 voxels * 4 nm in x


def test_006_preprocessing_names():
    from scipy import ndimage

    from diluvian.config import CONFIG
    from diluvian.preprocessing import grid_seeds, intensity_distance_seeds, make_prewitt

    data = np.random.default_rng(0).random((6, 7, 8))
    np.testing.assert_allclose(make_prewitt(3)(data, axis=1), ndimage.prewitt(data, axis=1))
    wide = make_prewitt(5)(np.arange(10.0)[None, :].repeat(5, 0), axis=1)
    assert wide[2, 5] == pytest.approx(2 * (1 + 2) * 5)  # half-width 2, smoothed over 5 rows
    step = CONFIG.model.move_step * 2
    seeds = grid_seeds(np.zeros((40, 80, 80)), (40, 4, 4), grid_step_spacing=2)
    assert np.all(np.diff(np.unique(seeds[:, 1])) == step[1])
    image = np.full((3, 40, 40), 200, np.uint8)
    image[:, 19:21, :] = 10
    new = intensity_distance_seeds(image, (40, 4, 4), erosion_radius_nm=8, min_sep_nm=40)
    old = intensity_distance_seeds(image, (40, 4, 4), erosion_radius=8, min_sep=40)
    np.testing.assert_array_equal(new, old)
    assert len(old) >= 2


def test_006_training_names():
    from diluvian.config import Config
    from diluvian.training import (
        DataGenerator,
        EarlyAbortException,
        build_training_gen,
        build_validation_gen,
        get_output_margin,
        patch_prediction_copy,
    )

    config = Config([{"model": {"input_fov_shape": [3, 9, 9], "output_fov_shape": [1, 5, 5],
                                "output_fov_move_fraction": 1},
                      "training": {"gpu_batch_size": 2, "training_size": 4,
                                   "validation_size": 2}}])
    assert get_output_margin(config.model).tolist() == [1, 2, 2]
    config.training.partitions = {".*": [1, 1, 1]}
    assert patch_prediction_copy("m") == "m"
    assert issubclass(EarlyAbortException, DiluvianError)
    volumes = {"v": _boxes_volume()}
    gen = build_training_gen(volumes, config)
    assert isinstance(gen, DataGenerator) and gen.steps_per_epoch == len(gen) == 2
    (images, masks), targets = gen[0][:2]
    assert images.shape[1:4] == (3, 9, 9) and targets.shape[1:4] == (1, 5, 5)
    first = [np.asarray(next(gen)[1]) for _ in range(2)]
    gen.reset()
    again = [np.asarray(next(gen)[1]) for _ in range(2)]
    np.testing.assert_array_equal(first[0], again[0])
    assert build_validation_gen(volumes, config).steps_per_epoch == 1


def test_006_network_names():
    keras = pytest.importorskip("keras")
    from diluvian.config import Config
    from diluvian.network import add_convolution_module, add_unet_layer, make_parallel

    nc = Config([{"network": {"convolution_filters": 4, "unet_depth": 1}}]).network
    x = keras.Input((4, 8, 8, 4))
    y = add_convolution_module(x, nc)
    assert tuple(y.shape[1:]) == (4, 8, 8, 4)
    u = add_unet_layer(x, nc, 1)
    assert tuple(u.shape[1:4]) == (4, 8, 8)
    model = keras.Model(x, y)
    assert make_parallel(model, 1) is model


# --------------------------------------------------------------------------- volumes
def test_006_downsampled_volume_takes_halvings():
    from diluvian.volumes import DownsampledVolume, NdarrayVolume

    parent = NdarrayVolume((40, 4, 4), image_data=np.zeros((4, 16, 16), np.uint8))
    down = DownsampledVolume(parent, [0, 1, 2])
    assert down.resolution.tolist() == [40, 8, 16] and down.shape == (4, 8, 4)
    assert DownsampledVolume(parent, resolution=(40, 8, 8)).shape == (4, 8, 8)


def test_006_sparse_wrapped_populators_and_subvolume_generators():
    from diluvian.volumes import (
        ClipSubvolumeImageGenerator,
        ErodedMaskGenerator,
        MirrorAugmentGenerator,
        RelabelSeedComponentGenerator,
        SparseWrappedVolume,
        SubvolumeGenerator,
        Volume,
    )

    volume = _boxes_volume()
    sparse = SparseWrappedVolume(volume)
    box = (np.array([0, 2, 2]), np.array([2, 4, 6]))
    np.testing.assert_array_equal(sparse.image_populator(box), volume.image_data[0:2, 2:4, 2:6])
    np.testing.assert_array_equal(sparse.label_populator(box), volume.label_data[0:2, 2:4, 2:6])
    bounds = Volume.SubvolumeBoundsGenerator(volume, (3, 5, 5), rng=np.random.default_rng(1))
    first = [next(bounds).start.tolist() for _ in range(3)]
    bounds.reset()
    assert [next(bounds).start.tolist() for _ in range(3)] == first
    subvs = SubvolumeGenerator(volume, bounds)
    eroded = ErodedMaskGenerator(RelabelSeedComponentGenerator(subvs), [0, 1, 1])
    subv = next(ClipSubvolumeImageGenerator(eroded, 0.0, 0.5))
    assert subv.image.max() <= 0.5 and subv.label_mask.shape == (3, 5, 5)
    assert subv.label_mask[tuple(subv.seed)]
    # Each box is 5 voxels tall in Y: eroding by 1 in Y leaves 3 rows (edges count inside).
    assert 0 < subv.label_mask.any(axis=(0, 2)).sum() <= 4
    both = MirrorAugmentGenerator(volume.subvolume_generator(shape=(3, 5, 5)), True, 2,
                                  rng=np.random.default_rng(0))
    a, b = next(both), next(both)
    assert a.image.shape == b.image.shape == (3, 5, 5)


def test_006_hdf5_volume_mask_bounds(tmp_path):
    import pickle

    h5py = pytest.importorskip("h5py")
    from diluvian.volumes import HDF5Volume

    path = tmp_path / "v.hdf5"
    with h5py.File(path, "w") as f:
        f["raw"] = np.zeros((4, 8, 8), np.uint8)
        f["mask"] = np.ones((4, 8, 8), np.uint8)
    vol = HDF5Volume(path, "raw", None, "mask", resolution=(40, 4, 4),
                     mask_bounds=([1, 2, 2], [3, 6, 6]))
    assert [b.tolist() for b in vol.mask_bounds] == [[1, 2, 2], [3, 6, 6]]
    again = pickle.loads(pickle.dumps(vol))
    assert [b.tolist() for b in again.mask_bounds] == [[1, 2, 2], [3, 6, 6]]
