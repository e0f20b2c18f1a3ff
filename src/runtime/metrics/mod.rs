//! The server's metrics: counted where requests and connections happen,
//! summed over every worker process, written as Prometheus text.
//!
//! `region` is the memory the counts live in: one mapping shared by the
//! supervisor and every worker it forks, a slot of atomics per worker.
//! `recorder` is one worker's handle on its slot (what the connection and
//! request code calls: a few relaxed atomic adds per request). `render`
//! sums the slots into the exposition text (`proto::prometheus`).
//! `sampler` copies the worker pool's load (queue depth, busy threads) into
//! the slot, where other workers' scrapes can see it.
//!
//! What it does not do: answer scrapes (`observe`), or bind the metrics
//! listener (`server`).

pub(crate) mod recorder;
pub(crate) mod region;
pub(crate) mod render;
pub(crate) mod sampler;
