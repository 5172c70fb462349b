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
    /// The first uncaptured error wgpu reported, if any.
    errors: Arc<Mutex<Option<String>>>,
}

/// Whether an adapter is a software rasteriser (lavapipe, llvmpipe, WARP…).
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// Adapters wgpu can see that can run the model (they support 64-bit integers in shaders),
/// best first: discrete, integrated, virtual, then software. `name` keeps only adapters whose
/// name contains it (case-insensitive).
pub fn usable_adapters(name: Option<&str>) -> Vec<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let mut adapters: Vec<wgpu::Adapter> =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .filter(|a| a.features().contains(wgpu::Features::SHADER_INT64))
            .filter(|a| {
                name.is_none_or(|n| a.get_info().name.to_lowercase().contains(&n.to_lowercase()))
            })
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

impl GpuContext {
    /// Opens a device on `adapter` with 64-bit shader integers and the adapter's own limits.
    pub fn open(adapter: &wgpu::Adapter) -> Result<GpuContext, Error> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("nngpu"),
            required_features: wgpu::Features::SHADER_INT64,
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
