"""A drop-in path for ``lifetimes`` users: lifetimes' (0.11.3) names, signatures and lenient
semantics, with clvrs' models computing the numbers. Change ``from lifetimes import
BetaGeoFitter`` to ``from clvrs.lifetimes import BetaGeoFitter`` (or alias the module).

What is here: ``BaseFitter``, ``BetaGeoFitter``, ``ModifiedBetaGeoFitter``, ``ParetoNBDFitter``,
``BetaGeoBetaBinomFitter``, ``GammaGammaFitter`` (``fit``, ``params_``, ``data``, ``summary``,
``variance_matrix_``, ``standard_errors_``, ``confidence_intervals_``, ``_unload_params``,
``predict``, ``generate_new_data``, ``save_model`` / ``load_model``, the conditional
predictions and ``conditional_probability_alive_matrix``), and the modules ``utils``,
``datasets``, ``generate_data`` and ``plotting`` with lifetimes' functions.

lifetimes' semantics kept on purpose: scalar arguments give numpy scalars (``float(x)`` and
``f"{x:.2%}"`` work), arrays give arrays and Series give Series with their index; predictions
accept what lifetimes accepts, including frequency 0 with recency > 0 (lifetimes' formulas are
evaluated there: the alive part of the model does not depend on recency, the dropout part is
integrated from recency on); ``summary_data_from_transaction_data`` drops transactions after
``observation_period_end`` silently; plots draw where lifetimes draws (the current axes for the
matrix, history and tracking plots; a new figure from pandas for the bar and calibration plots,
or ``ax=``) with lifetimes' titles and labels, and honour ``kind=``, ``label=`` and ``**kwargs``.
Bad input (None, text, mismatched lengths) and use before fitting raise typed clvrs errors
(:class:`~clvrs.exceptions.InvalidDataError`, :class:`~clvrs.exceptions.InvalidParameterError`,
:class:`clvrs.lifetimes.NotFittedError`, each also a ``ValueError``) naming the argument.

Intended differences: covariances (``variance_matrix_``) are correct off the diagonal and exist
for every model; no NaN or overflow where lifetimes returns them (Pareto/NBD with many purchases
or ``s`` near 1, BG/NBD with ``a + b < 1``, BG/BB over long histories); every fit is clvrs'
deterministic gradient method (lifetimes: BFGS on log-parameters, Nelder-Mead from random starts
for Pareto/NBD), so ``initial_params``, ``tol``, ``iterative_fitting`` and optimiser options are
accepted and ignored, and ``penalizer_coef`` is clvrs' ``penalizer`` (lifetimes applies it to
parameters of time-rescaled data, so the same value shrinks differently);
``_negative_log_likelihood_`` is the mean negative log-likelihood per customer (unscaled data);
``save_model`` writes a JSON document (lifetimes: a dill pickle; lifetimes' files cannot be
read); the holdout mean spend of ``calibration_and_holdout_data`` is lifetimes' (mean of raw
rows); ``plot_period_transactions`` draws the model's expected counts (lifetimes: one random
simulation); ``load_transaction_data`` raises (lifetimes' synthetic example log is not bundled).

lifetimes' own test suite
-------------------------
``python bench/run_lifetimes_suite.py <lifetimes checkout at v0.11.3>`` runs lifetimes'
``tests/`` (test_estimation, test_utils, test_generate_data, test_plotting) against this module.
Every test passes except these 7 of 112, each listed in ``EXEMPT_TESTS`` with its reason (the
script runs them as expected failures):

- ``test_estimation.py::TestParetoNBDFitter::test_overflow_error``: calls lifetimes' private
  Pareto/NBD helper _log_A_0, which clvrs does not carry.
- ``test_estimation.py::TestParetoNBDFitter::
  test_sum_of_scalar_inputs_to_negative_log_likelihood_is_equal_to_array``,
  ``test_estimation.py::TestBetaGeoFitter::
  test_sum_of_scalar_inputs_to_negative_log_likelihood_is_equal_to_array`` and
  ``test_estimation.py::TestModifiedBetaGammaFitter::
  test_sum_of_scalar_inputs_to_negative_log_likelihood_is_equal_to_array``: calls lifetimes'
  private optimiser objective _negative_log_likelihood (log-parameters, lifetimes' own
  normalisation), which clvrs does not carry; clvrs exposes log_likelihood_per_customer
  instead.
- ``test_estimation.py::TestModifiedBetaGammaFitter::
  test_purchase_predictions_do_not_differ_much_if_looking_at_hourly_or_daily_frequencies``,
  ``test_plotting.py::TestPlotting::test_plot_calibration_purchases_vs_holdout_purchases`` and
  ``test_plotting.py::TestPlotting::
  test_plot_calibration_purchases_vs_holdout_purchases_time_since_last_purchase``: needs
  lifetimes.datasets.load_transaction_data(), lifetimes' synthetic example log, which clvrs
  does not bundle (not the same data as anything clvrs ships).

With ``--example-log`` the script lets the three tests of the last group read the checkout's
own copy of that log; they pass (108 passed, 4 exempt).

The script also gives the test process back three pandas APIs that the 2019 tests call and
pandas 2/3 removed (``pandas.util.testing``, ``DataFrame.append``, ``float()`` of a
one-element Series); that is test-harness glue, not part of this module.
"""

from __future__ import annotations

from . import datasets, generate_data, plotting, utils
from .fitters import (
    BaseFitter,
    BetaGeoBetaBinomFitter,
    BetaGeoFitter,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
    NotFittedError,
    ParetoNBDFitter,
)

__version__ = "0.11.3"

__all__ = [
    "BaseFitter",
    "BetaGeoBetaBinomFitter",
    "BetaGeoFitter",
    "EXEMPT_TESTS",
    "GammaGammaFitter",
    "ModifiedBetaGeoFitter",
    "NotFittedError",
    "ParetoNBDFitter",
    "__version__",
    "datasets",
    "generate_data",
    "plotting",
    "utils",
]

_NEEDS_EXAMPLE_LOG = (
    "needs lifetimes.datasets.load_transaction_data(), lifetimes' synthetic example log, which "
    "clvrs does not bundle (not the same data as anything clvrs ships)"
)
_PRIVATE_OBJECTIVE = (
    "calls lifetimes' private optimiser objective _negative_log_likelihood (log-parameters, "
    "lifetimes' own normalisation), which clvrs does not carry; clvrs exposes "
    "log_likelihood_per_customer instead"
)

#: lifetimes' tests (``file::Class::test``) that the shim does not pass, and why.
EXEMPT_TESTS: dict[str, str] = {
    "test_estimation.py::TestParetoNBDFitter::test_overflow_error": (
        "calls lifetimes' private Pareto/NBD helper _log_A_0, which clvrs does not carry"
    ),
    "test_estimation.py::TestParetoNBDFitter::"
    "test_sum_of_scalar_inputs_to_negative_log_likelihood_is_equal_to_array": _PRIVATE_OBJECTIVE,
    "test_estimation.py::TestBetaGeoFitter::"
    "test_sum_of_scalar_inputs_to_negative_log_likelihood_is_equal_to_array": _PRIVATE_OBJECTIVE,
    "test_estimation.py::TestModifiedBetaGammaFitter::"
    "test_sum_of_scalar_inputs_to_negative_log_likelihood_is_equal_to_array": _PRIVATE_OBJECTIVE,
    "test_estimation.py::TestModifiedBetaGammaFitter::"
    "test_purchase_predictions_do_not_differ_much_if_looking_at_hourly_or_daily_frequencies": (
        _NEEDS_EXAMPLE_LOG
    ),
    "test_plotting.py::TestPlotting::test_plot_calibration_purchases_vs_holdout_purchases": (
        _NEEDS_EXAMPLE_LOG
    ),
    "test_plotting.py::TestPlotting::"
    "test_plot_calibration_purchases_vs_holdout_purchases_time_since_last_purchase": (
        _NEEDS_EXAMPLE_LOG
    ),
}
