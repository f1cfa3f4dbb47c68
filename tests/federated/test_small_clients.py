"""A federated client with fewer samples than the train signature's batch trains on partial batches, and its
TFLite and TensorFlow (SavedModel) runtimes agree on them: no Ray, one client's local training."""

from __future__ import annotations

import numpy as np

import litetrain
from litetrain.federated.client import ClientData, LocalTrainer
from tests.trainable.test_partial_batches import SGD, _data, bn_dropout_mlp

BATCH, EPOCHS = 16, 3


def test_a_client_with_5_samples_trains_a_batch_16_model(tmp_path) -> None:
    built = litetrain.build(bn_dropout_mlp(), loss="sparse_categorical_crossentropy", optimizer=SGD,
                            batch_size=BATCH, output_dir=tmp_path / "built")
    x, y = _data(25, seed=6)
    names = tuple(v.name for v in built.variables if v.role == "weight")
    data = ClientData(key="small", tflite=built.tflite, saved_model=None, x=x, y=y,
                      shards=(np.arange(5), np.arange(5, 25)), weight_names=names, batch_size=BATCH,
                      learning_rate=0.1)
    trainer = LocalTrainer(data, saved_model_dir=tmp_path / "built" / "saved_model")
    start = {n: v for n, v in trainer.runner("tflite").get_weights().items() if n in names}
    for client, samples, steps in ((0, 5, EPOCHS), (1, 20, 2 * EPOCHS)):
        lite = trainer.train("tflite", start, round_=1, client=client, seed=0, epochs=EPOCHS)
        tf = trainer.train("tensorflow", start, round_=1, client=client, seed=0, epochs=EPOCHS)
        assert lite.num_examples == samples and lite.steps == tf.steps == steps  # nothing dropped
        assert np.isfinite(lite.mean_loss) and abs(lite.mean_loss - tf.mean_loss) < 1e-6
        moved = max(float(np.max(np.abs(lite.weights[n] - start[n]))) for n in names)
        assert moved > 1e-3
        for n in names:
            np.testing.assert_allclose(lite.weights[n], tf.weights[n], rtol=0, atol=1e-6, err_msg=n)
