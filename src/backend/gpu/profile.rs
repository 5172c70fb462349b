//! Where a GPU run's time goes: GPU time per kernel from timestamp queries written around
//! every dispatch, and the host's time inside the backend, for `NNGPU_GPU_PROFILE=1`.
//!
//! Profiling needs the adapter's `TIMESTAMP_QUERY_INSIDE_PASSES` feature; without it (or
//! without the variable) nothing is timed and nothing is added to any submit. It never changes
//! a computed value: the queries only record when each dispatch starts and ends.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::Error;

/// Dispatches one submit can time: each takes two of the query set's slots, and a query set
/// holds at most `wgpu::QUERY_SET_MAX_QUERIES`. Dispatches past this in one submit are counted
/// but not timed (the report says how many).
const TIMED_PER_SUBMIT: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

/// The environment variable that turns profiling on.
pub const PROFILE_VARIABLE: &str = "NNGPU_GPU_PROFILE";

/// Whether the user asked for a profile.
pub fn requested() -> bool {
    std::env::var_os(PROFILE_VARIABLE).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The features profiling needs, among `available`.
pub fn features(available: wgpu::Features) -> wgpu::Features {
    let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
    if available.contains(wanted) {
        wanted
    } else {
        wgpu::Features::empty()
    }
}

/// One kernel's totals.
#[derive(Clone, Copy, Default)]
struct KernelTime {
    dispatches: u64,
    timed: u64,
    gpu_ns: f64,
}

/// Submits whose timestamps may wait to be collected at once: the encoder's window in flight
/// (`GpuBackend::forward_window_ahead`) and the one submitted after it.
const IN_FLIGHT: usize = 2;

/// What has been recorded and measured so far.
#[derive(Default)]
struct Log {
    /// The kernel of each timed dispatch in the commands not yet resolved, in query order.
    unresolved: Vec<&'static str>,
    /// Each submit resolved but not yet collected, oldest first: the read-back buffer its
    /// timestamps go to and the kernels they time.
    in_flight: VecDeque<(usize, Vec<&'static str>)>,
    /// Submits resolved so far, which picks each one's read-back buffer in turn.
    resolves: usize,
    kernels: BTreeMap<&'static str, KernelTime>,
}

/// Timestamp queries and their totals for one backend.
pub struct Profiler {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    /// One read-back buffer per submit that may be in flight, used in turn.
    readback: [wgpu::Buffer; IN_FLIGHT],
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
    log: Mutex<Log>,
}

/// Totals a `GpuBackend` keeps whether or not it profiles.
#[derive(Clone, Copy, Default)]
pub struct HostTotals {
    /// Decoder (or encoder) steps forwarded.
    pub steps: u64,
    /// Submits.
    pub submits: u64,
    /// Bytes read back from the GPU.
    pub read_back_bytes: u64,
    /// Time the caller spent inside the backend's calls, waits for the GPU included.
    pub in_backend: Duration,
    /// Part of `in_backend` spent inside wgpu's submit (a driver may wait there for the GPU:
    /// lavapipe's waits until the previous submit has run).
    pub submitting: Duration,
    /// Part of `in_backend` spent waiting for a submit to complete before reading its tables.
    pub waiting: Duration,
}

impl Profiler {
    /// A profiler for `device`, if it was opened with the features profiling needs
    /// (`features`; `GpuContext::open` asks for them when told to profile).
    pub fn open(device: &wgpu::Device, queue: &wgpu::Queue) -> Option<Profiler> {
        let wanted = features(wgpu::Features::all());
        if wanted.is_empty() || !device.features().contains(wanted) {
            return None;
        }
        let count = 2 * TIMED_PER_SUBMIT;
        let bytes = u64::from(count) * wgpu::QUERY_SIZE as u64;
        Some(Profiler {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolved: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile resolved"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: std::array::from_fn(|_| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("profile read-back"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }),
            period_ns: f64::from(queue.get_timestamp_period()),
            log: Mutex::new(Log::default()),
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `dispatch` into `pass` between two timestamps, when this submit still has
    /// query slots; counts it under `kernel` either way.
    pub fn time(
        &self,
        pass: &mut wgpu::ComputePass,
        kernel: &'static str,
        dispatch: impl FnOnce(&mut wgpu::ComputePass),
    ) {
        let mut log = self.log();
        let slot = log.unresolved.len() as u32;
        let totals = log.kernels.entry(kernel).or_default();
        totals.dispatches += 1;
        if slot >= TIMED_PER_SUBMIT {
            drop(log);
            dispatch(pass);
            return;
        }
        totals.timed += 1;
        log.unresolved.push(kernel);
        drop(log);
        pass.write_timestamp(&self.queries, 2 * slot);
        dispatch(pass);
        pass.write_timestamp(&self.queries, 2 * slot + 1);
    }

    /// Adds to `encoder`, after its passes, the copy of this submit's timestamps to a
    /// read-back buffer of its own. Every submit that goes through here must be followed by one
    /// `collect`, in submit order, before the submit after next (a panic otherwise): the query
    /// slots are reused by every submit, the read-back buffers by every other one.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut log = self.log();
        assert!(
            log.in_flight.len() < IN_FLIGHT,
            "a submit's timestamps were not collected"
        );
        let target = log.resolves % IN_FLIGHT;
        log.resolves += 1;
        let timed = std::mem::take(&mut log.unresolved);
        let written = 2 * timed.len() as u32;
        log.in_flight.push_back((target, timed));
        if written == 0 {
            return;
        }
        encoder.resolve_query_set(&self.queries, 0..written, &self.resolved, 0);
        let bytes = u64::from(written) * wgpu::QUERY_SIZE as u64;
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readback[target], 0, bytes);
    }

    /// Reads the timestamps of the oldest submit `resolve` prepared and not yet collected
    /// (after it was submitted), through `map_read(buffer, bytes)`, and adds each dispatch's
    /// time to its kernel.
    pub fn collect(
        &self,
        map_read: impl FnOnce(&wgpu::Buffer, u64) -> Result<Vec<u8>, Error>,
    ) -> Result<(), Error> {
        let Some((target, timed)) = self.log().in_flight.pop_front() else {
            return Ok(());
        };
        if timed.is_empty() {
            return Ok(());
        }
        let written = 2 * timed.len() as u64;
        let data = map_read(&self.readback[target], written * wgpu::QUERY_SIZE as u64)?;
        let ticks: &[u64] = bytemuck::cast_slice(&data);
        let mut log = self.log();
        for (kernel, pair) in timed.iter().zip(ticks.chunks_exact(2)) {
            let ns = pair[1].saturating_sub(pair[0]) as f64 * self.period_ns;
            if let Some(t) = log.kernels.get_mut(kernel) {
                t.gpu_ns += ns;
            }
        }
        Ok(())
    }

    /// The report: the host's totals and the backend's last dispatch counts (per forward step,
    /// per window's backward pass), then one line per kernel, slowest first.
    pub fn report(
        &self,
        adapter: &str,
        host: &HostTotals,
        (forward_per_step, backward_per_window): (usize, usize),
    ) -> String {
        let log = self.log();
        let steps = host.steps.max(1) as f64;
        let gpu_ns: f64 = log.kernels.values().map(|k| k.gpu_ns).sum();
        let untimed: u64 = log.kernels.values().map(|k| k.dispatches - k.timed).sum();
        let in_backend_ns = host.in_backend.as_nanos() as f64;
        let mut out = format!(
            "GPU profile, {adapter}: {} steps in {} submits; inside the backend {:.1} µs/step, \
             of which submitting {:.1} µs/step and waiting for tables {:.1} µs/step; \
             GPU (dispatches timed) {:.1} µs/step and the backend's time besides it \
             {:.1} µs/step; \
             {} forward dispatches/step, {} backward dispatches/window, \
             {:.0} read-back bytes/step{}\n",
            host.steps,
            host.submits,
            in_backend_ns / steps / 1e3,
            host.submitting.as_nanos() as f64 / steps / 1e3,
            host.waiting.as_nanos() as f64 / steps / 1e3,
            gpu_ns / steps / 1e3,
            (in_backend_ns - gpu_ns).max(0.0) / steps / 1e3,
            forward_per_step,
            backward_per_window,
            host.read_back_bytes as f64 / steps,
            match untimed {
                0 => String::new(),
                n => format!(" ({n} dispatches past a submit's query slots not timed)"),
            },
        );
        out.push_str("  kernel             dispatches  per step   GPU ms  µs/dispatch  share\n");
        let mut kernels: Vec<_> = log.kernels.iter().collect();
        kernels.sort_by(|a, b| b.1.gpu_ns.total_cmp(&a.1.gpu_ns));
        for (name, t) in kernels {
            let per_dispatch = if t.timed > 0 {
                t.gpu_ns / t.timed as f64
            } else {
                0.0
            };
            out.push_str(&format!(
                "  {name:<18} {:>10} {:>9.2} {:>8.1} {:>12.2} {:>5.1}%\n",
                t.dispatches,
                t.dispatches as f64 / steps,
                t.gpu_ns / 1e6,
                per_dispatch / 1e3,
                100.0 * t.gpu_ns / gpu_ns.max(1.0),
            ));
        }
        out
    }
}
