//! `_core.Metrics`: the metrics region as Python holds it.
//!
//! The supervisor makes one before it forks its workers (each inherits the
//! mapping) and hands it to each worker's `serve(..., metrics=,
//! worker_index=)`; it adds worker restarts and clears a dead worker's
//! gauges. `render` gives the exposition text, as a scrape would.
//!
//! What it does not do: count (`runtime::metrics::recorder`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::runtime::metrics::region::Region;
use crate::runtime::metrics::render::render;

#[pyclass(module = "propylon._core", name = "Metrics", frozen)]
pub(crate) struct Metrics {
    pub(crate) region: Arc<Region>,
}

#[pymethods]
impl Metrics {
    #[new]
    fn new(slots: usize) -> PyResult<Metrics> {
        let region = Region::new(slots).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Metrics {
            region: Arc::new(region),
        })
    }

    /// Slots: one per worker index.
    #[getter]
    fn slots(&self) -> usize {
        self.region.slot_count()
    }

    fn worker_restarted(&self) {
        self.region
            .header()
            .worker_restarts
            .fetch_add(1, Ordering::Relaxed);
    }

    fn clear_gauges(&self, index: usize) -> PyResult<()> {
        let slot = self.region.slot(index).ok_or_else(|| {
            PyIndexError::new_err(format!(
                "worker index {index} is out of range (0 to {})",
                self.region.slot_count() - 1
            ))
        })?;
        slot.clear_gauges();
        Ok(())
    }

    fn render<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let text = render(&self.region);
        PyBytes::new(py, text.as_bytes())
    }
}
