"""Acceptance on real data: the imported Google FFN model fills FIB-25 objects.

Twenty seeds are spread over FIB-25 (``training_sample2.h5``, held out from
the FFN model's training): twenty distinct objects of at least 20,000 voxels
are chosen with a fixed random seed, and each is seeded at the maximum of the
distance transform to the nearest label boundary, at least 24 voxels from
the volume border. Each object is filled alone with the imported FFN model
and FFN's own inference settings carried by the model file (seed 0.95, pad
0.05, move threshold 0.9, move step 8, final threshold 0.6).

To keep CI on two CPU cores within a few minutes, each fill is confined to a
40^3 box centred on its seed (shifted inside the volume) and the IoU with the
seeded ground-truth object is measured within that box; a fill of the whole
volume follows objects much further (hundreds of moves per object). The
median IoU must be at least 0.8. Skipped when ``../shared`` is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

NUM_SEEDS = 20
SEED = 0
BOX_SHAPE = (40, 40, 40)


@pytest.fixture(scope="session")
def ffn_model_file(ffn_checkpoint, tmp_path_factory):
    from diluvian.network import import_ffn_checkpoint

    path = tmp_path_factory.mktemp("ffn") / "ffn_fib25.keras"
    import_ffn_checkpoint(ffn_checkpoint, path, move_step=8)  # FFN's own deltas
    return path


@pytest.fixture(scope="module")
def fib25_volume(fib25_path, tmp_path_factory):
    from diluvian.volumes import load_volumes

    toml = tmp_path_factory.mktemp("fib25") / "fib25.toml"
    toml.write_text(f'[[dataset]]\nname = "fib25"\nhdf5_file = "{fib25_path}"\n'
                    'image_dataset = "volumes/raw"\n'
                    'label_dataset = "volumes/labels/neuron_ids"\n')
    return load_volumes([toml], in_memory=True)["fib25"]


def test_ffn_fills_fib25_objects_with_median_iou_at_least_0_8(ffn_model_file, fib25_volume):
    from diluvian.config import Config
    from diluvian.network import apply_model_settings, load_model, read_model_settings
    from diluvian.sparse_fill import fill_seeded_objects, object_seeds
    from diluvian.util import make_rng

    config = Config()
    apply_model_settings(config, read_model_settings(ffn_model_file))
    assert config.model.move_step.tolist() == [8, 8, 8]
    assert (config.model.v_true, config.model.v_false) == (0.95, 0.05)
    assert (config.model.t_move, config.model.t_final_value) == (0.9, 0.6)
    model = load_model(ffn_model_file)

    image = np.asarray(fib25_volume.image_data)
    labels = np.asarray(fib25_volume.label_data)
    seeds = object_seeds(labels, NUM_SEEDS, make_rng(SEED, "fib25-acceptance"))
    assert len(seeds) == NUM_SEEDS
    assert len({s["label_id"] for s in seeds}) == NUM_SEEDS
    results = fill_seeded_objects(image, labels, seeds, model, config.model,
                                  box_shape=BOX_SHAPE, batch_size=16)
    ious = [r["iou"] for r in results]
    for r in results:  # shown with ``pytest -s``
        print(r["label_id"], r["seed_vox"], r["size_vox"], r["moves"], f"{r['iou']:.3f}",
              f"{r['precision']:.3f}", f"{r['recall']:.3f}")
    print("median IoU", float(np.median(ious)))
    assert all(r["moves"] >= 1 for r in results)
    assert np.median(ious) >= 0.8, [round(i, 3) for i in ious]
