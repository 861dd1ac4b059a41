//! Bindings for transaction-log summaries.

use numpy::{PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{run, slice, to_numpy};
use crate::data::text::{self, IsoForm, Offsets, TextChunk, TextColumn};
use crate::data::transactions::{
    summarize, Period, SummaryOptions, TransactionColumns, TransactionNames,
};

/// The offsets buffer of an Arrow string array (`string`: int32, `large_string`: int64).
#[derive(FromPyObject)]
enum OffsetsArg<'py> {
    Small(PyReadonlyArray1<'py, i32>),
    Large(PyReadonlyArray1<'py, i64>),
}

/// One chunk of an Arrow string column as the Python layer hands it over: offsets (shifted to
/// the chunk's offset), the bytes, and the validity of each row when there are nulls.
type TextChunkArg<'py> = (
    OffsetsArg<'py>,
    PyReadonlyArray1<'py, u8>,
    Option<PyReadonlyArray1<'py, bool>>,
);

fn text_column<'a>(
    py: Python<'_>,
    chunks: &'a [TextChunkArg<'_>],
    column: &str,
) -> PyResult<TextColumn<'a>> {
    let mut out = Vec::with_capacity(chunks.len());
    for (offsets, data, valid) in chunks {
        let offsets = match offsets {
            OffsetsArg::Small(o) => Offsets::Small(o.as_slice()?),
            OffsetsArg::Large(o) => Offsets::Large(o.as_slice()?),
        };
        out.push(TextChunk {
            offsets,
            data: data.as_slice()?,
            valid: match valid {
                Some(v) => Some(v.as_slice()?),
                None => None,
            },
        });
    }
    TextColumn::new(out, column).map_err(|e| super::to_pyerr(py, e))
}

/// Each row's code and each code's first row.
type Codes<'py> = (
    Bound<'py, numpy::PyArray1<i64>>,
    Bound<'py, numpy::PyArray1<i64>>,
);

/// Factorise a text column (Arrow string chunks): each row's code in the sorted order of the
/// distinct values (-1 for null), and the first row of each value in that order.
#[pyfunction]
#[pyo3(signature = (chunks, column, n_jobs=None))]
fn factorize_text<'py>(
    py: Python<'py>,
    chunks: Vec<TextChunkArg<'py>>,
    column: &str,
    n_jobs: Option<i64>,
) -> PyResult<Codes<'py>> {
    let text = text_column(py, &chunks, column)?;
    let out = run(py, n_jobs, |exec, _| Ok(text::factorize(&text, exec)))?;
    Ok((
        numpy::PyArray1::from_vec(py, out.codes),
        numpy::PyArray1::from_vec(py, out.first_rows),
    ))
}

/// Microseconds since the epoch of every row of a text column in the ISO form `format`
/// (`%Y-%m-%d`, `%Y-%m-%d %H:%M:%S` or `%Y-%m-%dT%H:%M:%S`; nulls are NaT), or None when a
/// value is not exactly in that form (or the format is another).
#[pyfunction]
#[pyo3(signature = (chunks, column, format, n_jobs=None))]
fn parse_text_times<'py>(
    py: Python<'py>,
    chunks: Vec<TextChunkArg<'py>>,
    column: &str,
    format: &str,
    n_jobs: Option<i64>,
) -> PyResult<Option<Bound<'py, numpy::PyArray1<i64>>>> {
    let Some(form) = IsoForm::from_format(format) else {
        return Ok(None);
    };
    let text = text_column(py, &chunks, column)?;
    let out = run(py, n_jobs, |exec, _| {
        Ok(text::parse_times(&text, form, exec))
    })?;
    Ok(out.map(|times| numpy::PyArray1::from_vec(py, times)))
}

/// Summarise a transaction log given dense customer codes and times in units of `time_unit_ns`
/// nanoseconds (`end_ns` and `after_ns` in the same units); returns a
/// dict of arrays (`customer` codes, `frequency`, `recency`, `T`, `monetary_value` when amounts
/// are given, `first_period`), counts and, with `track`, repeat transactions per period.
#[pyfunction]
#[pyo3(signature = (customer, time_ns, amount, n_customers, names, freq="D", freq_multiplier=1.0, end_ns=None, include_first=false, exclude_after_end=false, allow_negative=false, after_ns=None, track=false, time_unit_ns=1, customer_offset=0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn summarize_transactions<'py>(
    py: Python<'py>,
    customer: PyReadonlyArray1<'py, i64>,
    time_ns: PyReadonlyArray1<'py, i64>,
    amount: Option<PyReadonlyArray1<'py, f64>>,
    n_customers: usize,
    names: (String, String, String),
    freq: &str,
    freq_multiplier: f64,
    end_ns: Option<i64>,
    include_first: bool,
    exclude_after_end: bool,
    allow_negative: bool,
    after_ns: Option<i64>,
    track: bool,
    time_unit_ns: i64,
    customer_offset: i64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let contiguous = |ok: bool, name: &str| {
        if ok {
            Ok(())
        } else {
            Err(pyo3::exceptions::PyValueError::new_err(format!(
                "`{name}` must be a contiguous array"
            )))
        }
    };
    contiguous(customer.is_c_contiguous(), "customer")?;
    contiguous(time_ns.is_c_contiguous(), "time_ns")?;
    let customer = customer.as_slice()?;
    let time_ns = time_ns.as_slice()?;
    let amount = match &amount {
        Some(a) => Some(slice(a, "amount")?),
        None => None,
    };
    let names = TransactionNames {
        customer: names.0,
        time: names.1,
        amount: names.2,
    };
    let summary = run(py, n_jobs, |exec, _| {
        let opts = SummaryOptions {
            period: Period::parse(freq)?,
            multiplier: freq_multiplier,
            end_ns,
            include_first,
            exclude_after_end,
            allow_negative,
            after_ns,
            track,
            time_unit_ns,
        };
        let columns = TransactionColumns {
            customer,
            time_ns,
            amount,
            customer_offset,
        };
        summarize(&columns, n_customers, &names, &opts, exec)
    })?;
    let d = PyDict::new(py);
    d.set_item("customer", numpy::PyArray1::from_vec(py, summary.customer))?;
    d.set_item("frequency", to_numpy(py, summary.frequency))?;
    d.set_item("recency", to_numpy(py, summary.recency))?;
    d.set_item("T", to_numpy(py, summary.age))?;
    if let Some(m) = summary.monetary {
        d.set_item("monetary_value", to_numpy(py, m))?;
    }
    d.set_item(
        "first_period",
        numpy::PyArray1::from_vec(py, summary.first_period),
    )?;
    d.set_item("excluded_after_end", summary.excluded_after_end)?;
    d.set_item("end_period", summary.end_period)?;
    d.set_item("repeat_counts", summary.repeat_counts)?;
    Ok(d)
}

/// The period index of each time (see `Period::index_in`; times in units of `time_unit_ns`
/// nanoseconds), for aligning dates with periods.
#[pyfunction]
#[pyo3(signature = (time_ns, freq, time_unit_ns=1))]
fn period_index<'py>(
    py: Python<'py>,
    time_ns: numpy::PyReadonlyArray1<'py, i64>,
    freq: &str,
    time_unit_ns: i64,
) -> PyResult<Bound<'py, numpy::PyArray1<i64>>> {
    let times = time_ns.as_array();
    let periods = run(py, Some(1), |_, _| {
        let period = Period::parse(freq)?;
        if time_unit_ns < 1 {
            return Err(crate::error::ClvError::invalid_parameter(
                "time_unit_ns",
                format!("must be >= 1, got {time_unit_ns}"),
            ));
        }
        Ok(times
            .iter()
            .map(|&t| period.index_in(t, time_unit_ns))
            .collect())
    })?;
    Ok(numpy::PyArray1::from_vec(py, periods))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(summarize_transactions, m)?)?;
    m.add_function(wrap_pyfunction!(period_index, m)?)?;
    m.add_function(wrap_pyfunction!(factorize_text, m)?)?;
    m.add_function(wrap_pyfunction!(parse_text_times, m)?)?;
    Ok(())
}
