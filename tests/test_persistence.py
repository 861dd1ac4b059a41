"""Saving and loading models: versioned JSON documents and pickle."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs import BetaGeoModel
from clvrs.exceptions import ModelFileError, NotFittedError


def _predictions(model: BetaGeoModel, data: pd.DataFrame) -> list:
    return [
        model.expected_purchases(data, t=39.0),
        model.probability_alive(data),
        model.log_likelihood_per_customer(data),
        model.expected_purchases_new_customer(np.array([1.0, 39.0, 78.0])),
        model.purchase_count_probability(np.arange(10), 39.0),
    ]


def _assert_same_predictions(m1: BetaGeoModel, m2: BetaGeoModel, data: pd.DataFrame) -> None:
    for p1, p2 in zip(_predictions(m1, data), _predictions(m2, data)):
        if isinstance(p1, pd.Series):
            pd.testing.assert_series_equal(p1, p2, check_exact=True)
        else:
            np.testing.assert_array_equal(p1, p2)


@pytest.fixture
def saved(tmp_path, cdnow):
    model = BetaGeoModel(n_jobs=2, columns={"frequency": "frequency"}).fit(cdnow)
    path = tmp_path / "model.json"
    assert model.save(path) is None
    return model, path


def test_saved_file_is_small_versioned_json(saved):
    _, path = saved
    size = os.path.getsize(path)
    assert 0 < size < 10_000
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    assert "format" in doc and "format_version" in doc
    assert doc["format"] == "clvrs.model"
    assert isinstance(doc["format_version"], int) and doc["format_version"] >= 1
    assert doc["model"] == "BetaGeoModel"


def test_load_restores_estimates_and_predictions(saved, cdnow):
    model, path = saved
    loaded = clvrs.load(path)
    assert type(loaded) is BetaGeoModel
    pd.testing.assert_series_equal(loaded.params_, model.params_, check_exact=True)
    pd.testing.assert_frame_equal(loaded.covariance_, model.covariance_, check_exact=True)
    pd.testing.assert_series_equal(
        loaded.standard_errors_, model.standard_errors_, check_exact=True
    )
    assert loaded.log_likelihood_ == model.log_likelihood_
    assert loaded.aic_ == model.aic_ and loaded.bic_ == model.bic_
    assert loaded.n_observations_ == model.n_observations_
    assert loaded.converged_ is True and loaded.n_iter_ == model.n_iter_
    assert loaded.get_params() == model.get_params()
    pd.testing.assert_frame_equal(loaded.summary, model.summary, check_exact=True)
    assert repr(loaded) == repr(model)
    _assert_same_predictions(loaded, model, cdnow)


def test_load_accepts_str_paths_and_from_params_models(tmp_path, cdnow):
    built = BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    path = str(tmp_path / "built.json")
    built.save(path)
    loaded = clvrs.load(path)
    pd.testing.assert_series_equal(loaded.params_, built.params_, check_exact=True)
    assert loaded.covariance_ is None and loaded.log_likelihood_ is None
    _assert_same_predictions(loaded, built, cdnow)


def test_non_converged_model_round_trips_quietly(tmp_path, cdnow, recwarn):
    with pytest.warns(clvrs.ConvergenceWarning):
        model = BetaGeoModel(max_iter=1).fit(cdnow)
    recwarn.clear()
    path = tmp_path / "nc.json"
    model.save(path)
    loaded = clvrs.load(path)
    assert len(recwarn) == 0
    assert loaded.converged_ is False
    np.testing.assert_array_equal(loaded.params_.to_numpy(), model.params_.to_numpy())


def test_loaded_model_can_be_refitted(saved, cdnow, cdnow_model):
    _, path = saved
    refit = clvrs.load(path).fit(cdnow)
    np.testing.assert_array_equal(refit.params_.to_numpy(), cdnow_model.params_.to_numpy())


def test_pickle_round_trip(cdnow, cdnow_model):
    restored = pickle.loads(pickle.dumps(cdnow_model))
    assert type(restored) is BetaGeoModel and restored is not cdnow_model
    pd.testing.assert_series_equal(restored.params_, cdnow_model.params_, check_exact=True)
    pd.testing.assert_frame_equal(restored.covariance_, cdnow_model.covariance_, check_exact=True)
    _assert_same_predictions(restored, cdnow_model, cdnow)

    unfitted = pickle.loads(pickle.dumps(BetaGeoModel(penalizer=0.25)))
    assert unfitted.penalizer == 0.25 and not hasattr(unfitted, "params_")


# --------------------------------------------------------------------------------------------
# unusable files
# --------------------------------------------------------------------------------------------


def _newer(text: str) -> bytes:
    doc = json.loads(text)
    doc["format_version"] = 999
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "kind, make, words",
    [
        ("garbage", lambda text: bytes(range(256)) * 4, "JSON"),
        ("ascii garbage", lambda text: b"not json at all {{{", "JSON"),
        ("empty", lambda text: b"", "JSON"),
        ("truncated", lambda text: text.encode()[: len(text) // 2], "JSON"),
        ("foreign", lambda text: b'{"a": 1}', "format"),
        ("foreign list", lambda text: b"[1, 2, 3]", "format"),
        ("newer version", _newer, "newer"),
    ],
)
def test_unusable_files_raise_model_file_error(saved, tmp_path, kind, make, words):
    _, path = saved
    bad = tmp_path / "bad.json"
    bad.write_bytes(make(path.read_text(encoding="utf-8")))
    with pytest.raises(ModelFileError) as info:
        clvrs.load(bad)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(bad) in message  # which file
    assert "clvrs model file" in message
    assert words in message
    if kind == "newer version":
        assert "999" in message and "upgrade" in message


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc.pop("params"),
        lambda doc: doc["params"].update(r=-1.0),
        lambda doc: doc.update(covariance=[[1.0]]),
        lambda doc: doc.update(hyperparameters={"no_such_option": 1}),
        lambda doc: doc.update(model="NoSuchModel"),
        lambda doc: doc.update(format_version="1"),
    ],
    ids=["no params", "negative r", "bad covariance", "unknown option", "unknown model", "v str"],
)
def test_damaged_documents_raise_model_file_error(saved, tmp_path, edit):
    _, path = saved
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    bad = tmp_path / "damaged.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ModelFileError, match="clvrs model file"):
        clvrs.load(bad)


def test_saving_an_unfitted_model(tmp_path):
    path = tmp_path / "unfitted.json"
    with pytest.raises(NotFittedError):
        BetaGeoModel().save(path)
    assert not path.exists()
