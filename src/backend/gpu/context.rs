//! Adapter choice and device creation, with wgpu's errors turned into `Error`s instead of
//! panics.

use std::sync::{Arc, Mutex};

use crate::error::Error;

/// An open device and what it runs on.
pub struct GpuContext {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Adapter name, backend and type, for messages.
    pub description: String,
    /// Largest storage buffer one binding may hold, in bytes.
    pub max_binding: u64,
    /// Largest workgroup memory one kernel may declare, in bytes.
    pub max_workgroup_bytes: u32,
    /// Whether the adapter is a software rasteriser (its cores are few, and wide tiles pay).
    pub software: bool,
    /// The first uncaptured error wgpu reported, if any.
    errors: Arc<Mutex<Option<String>>>,
}

/// Whether an adapter is a software rasteriser (lavapipe, llvmpipe, WARP…).
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// Other names people use for an adapter: Mesa's software Vulkan driver is packaged and
/// known as *lavapipe* but reports itself as *llvmpipe*.
const ALIASES: [(&str, &str); 1] = [("lavapipe", "llvmpipe")];

/// Whether `query` names the adapter `info`: a case-insensitive part of its name, driver or
/// driver details, or of the name an alias of `query` stands for.
pub fn adapter_matches(info: &wgpu::AdapterInfo, query: &str) -> bool {
    names_match(&[&info.name, &info.driver, &info.driver_info], query)
}

/// Whether `query` (or what an alias in it stands for) is a case-insensitive part of one of
/// `fields`.
fn names_match(fields: &[&str], query: &str) -> bool {
    let query = query.to_lowercase();
    let alias = ALIASES
        .iter()
        .find(|(alias, _)| query.contains(alias))
        .map(|(alias, real)| query.replace(alias, real));
    fields.iter().map(|f| f.to_lowercase()).any(|field| {
        field.contains(&query) || alias.as_ref().is_some_and(|a| field.contains(a.as_str()))
    })
}

/// Every adapter wgpu can see, usable or not, with the Vulkan and Mesa loaders' messages kept
/// off standard error (see `quiet_stderr`).
fn probe() -> Vec<wgpu::Adapter> {
    quiet_stderr(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
    })
}

/// Adapters wgpu can see that can run the model (they support 64-bit integers in shaders),
/// best first: discrete, integrated, virtual, then software. `name` keeps only adapters it
/// names (`adapter_matches`).
pub fn usable_adapters(name: Option<&str>) -> Vec<wgpu::Adapter> {
    let mut adapters: Vec<wgpu::Adapter> = probe()
        .into_iter()
        .filter(|a| a.features().contains(wgpu::Features::SHADER_INT64))
        .filter(|a| name.is_none_or(|n| adapter_matches(&a.get_info(), n)))
        .collect();
    adapters.sort_by_key(|a| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    });
    adapters
}

/// Why no adapter can run the model, naming every adapter there is (and why each one is
/// unusable), so that a user can pick one with `--adapter`.
pub fn no_adapter_message(name: Option<&str>) -> String {
    let seen: Vec<String> = probe()
        .iter()
        .map(|a| {
            let info = a.get_info();
            let usable = a.features().contains(wgpu::Features::SHADER_INT64);
            format!(
                "{} ({:?}, {:?}{})",
                info.name,
                info.backend,
                info.device_type,
                if usable {
                    ""
                } else {
                    ", no 64-bit shader integers"
                }
            )
        })
        .collect();
    let what = match name {
        Some(name) => format!("no GPU adapter matching {name:?} with 64-bit shader integers"),
        None => "no GPU adapter with 64-bit shader integers".to_string(),
    };
    if seen.is_empty() {
        format!(
            "{what}; wgpu found no adapter at all (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers)"
        )
    } else {
        format!("{what}; adapters found: {}", seen.join("; "))
    }
}

/// Runs `f` with standard error (fd 2) pointed at /dev/null.
///
/// Why: creating an instance and enumerating adapters loads the Vulkan ICDs, and Mesa's
/// (through libwayland) prints "error: XDG_RUNTIME_DIR is invalid or not set" on every run of
/// a headless machine, although nngpu only asks which adapters exist and may well run on the
/// CPU. Setting XDG_RUNTIME_DIR instead would mean changing the environment of a running,
/// multi-threaded process (undefined behaviour next to any concurrent `getenv`), and would
/// still miss other loaders' chatter; silencing fd 2 for the probe alone does neither. Only
/// the probe is silenced: opening a device, running kernels and every nngpu message still
/// reach the terminal. `NNGPU_GPU_DIAGNOSTICS=1` keeps the loaders' messages, for debugging a
/// driver. A global lock keeps two concurrent probes from saving each other's /dev/null as
/// "the" standard error.
/// Held while fd 2 is silenced, so that no other thread's probe or message sees /dev/null as
/// standard error.
static STDERR_LOCK: Mutex<()> = Mutex::new(());

/// Writes `line` to the process's real standard error, after any probe running on another
/// thread has restored it. For messages that must not be lost to `quiet_stderr` nor captured
/// by the test harness (which captures `eprintln!`), such as a test saying why it skips.
pub fn write_stderr_line(line: &str) {
    use std::io::Write;
    let _guard = STDERR_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn quiet_stderr<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(unix)]
    {
        if std::env::var_os("NNGPU_GPU_DIAGNOSTICS").is_some_and(|v| v == "1") {
            return f();
        }
        let _guard = STDERR_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
            return f();
        };
        use std::os::fd::AsRawFd;
        // SAFETY: plain descriptor calls on descriptors this function owns (the duplicate of
        // fd 2 and /dev/null, both open); fd 2 is restored before returning, also if the
        // probe panics, since the restore runs in a drop guard.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            return f();
        }
        struct Restore(i32);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: `self.0` is the duplicate of the original fd 2, still open.
                unsafe {
                    libc::dup2(self.0, 2);
                    libc::close(self.0);
                }
            }
        }
        let _restore = Restore(saved);
        // SAFETY: both descriptors are open; on failure fd 2 is simply left as it was.
        unsafe { libc::dup2(null.as_raw_fd(), 2) };
        f()
    }
    #[cfg(not(unix))]
    f()
}

impl GpuContext {
    /// Opens a device on `adapter` with 64-bit shader integers and the adapter's own limits
    /// (and, when `profile`, the timestamp queries of `profile` where the adapter has them).
    pub fn open(adapter: &wgpu::Adapter, profile: bool) -> Result<GpuContext, Error> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("nngpu"),
            required_features: wgpu::Features::SHADER_INT64
                | match profile {
                    true => super::profile::features(adapter.features()),
                    false => wgpu::Features::empty(),
                },
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&descriptor))
            .map_err(|e| Error::BackendUnavailable(format!("{}: {e}", info.name)))?;
        let errors = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        Ok(GpuContext {
            device,
            queue,
            description: format!(
                "gpu ({}, {:?}, {:?})",
                info.name, info.backend, info.device_type
            ),
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            max_workgroup_bytes: limits.max_compute_workgroup_storage_size,
            software: is_software(&info),
            errors,
        })
    }

    /// The first error wgpu reported since the device opened, as an `Error`.
    pub fn check(&self) -> Result<(), Error> {
        let slot = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(e) => Err(Error::Gpu(e.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::names_match;

    #[test]
    fn lavapipe_names_llvmpipe_and_names_match_in_any_case() {
        let fields = [
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            "llvmpipe",
            "Mesa 22.3.6 (LLVM 15.0.6)",
        ];
        for query in [
            "lavapipe", "LavaPipe", "llvmpipe", "LLVM", "mesa", "256 bits",
        ] {
            assert!(names_match(&fields, query), "{query}");
        }
        for query in ["nvidia", "swiftshader", "lavapipe2"] {
            assert!(!names_match(&fields, query), "{query}");
        }
    }
}
