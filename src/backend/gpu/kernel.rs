//! Kernels: WGSL sources with the arithmetic contract's constants injected, compiled into
//! pipelines, and bound once to the buffers they will always use.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::profile::Profiler;
use crate::fixed;

/// The shared prelude of every kernel.
const COMMON: &str = include_str!("../../../shaders/common.wgsl");

/// Source of each kernel, by name.
pub fn source(name: &str) -> &'static str {
    match name {
        "layer_forward" => include_str!("../../../shaders/layer_forward.wgsl"),
        "head_softmax" => include_str!("../../../shaders/head_softmax.wgsl"),
        "output_grad" => include_str!("../../../shaders/output_grad.wgsl"),
        "input_grad" => include_str!("../../../shaders/input_grad.wgsl"),
        "layer_backward" => include_str!("../../../shaders/layer_backward.wgsl"),
        "matrix_update" => include_str!("../../../shaders/matrix_update.wgsl"),
        "symbol_order" => include_str!("../../../shaders/symbol_order.wgsl"),
        "vector_update" => include_str!("../../../shaders/vector_update.wgsl"),
        other => unreachable!("no kernel named {other}"),
    }
}

/// Offsets of the tables within the tables buffer, in `i32` entries:
/// sigmoid, tanh, exp, rsqrt, back to back.
pub fn table_data() -> (Vec<i32>, [usize; 4]) {
    let t = fixed::tables();
    let mut data = Vec::new();
    let mut offsets = [0; 4];
    for (i, part) in [&t.sigmoid, &t.tanh, &t.exp_neg, &t.rsqrt]
        .into_iter()
        .enumerate()
    {
        offsets[i] = data.len();
        data.extend_from_slice(part);
    }
    (data, offsets)
}

/// A WGSL constant declaration's value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    U32(u32),
    I32(i32),
    Bool(bool),
}

/// Constants of one kernel instance; a `BTreeMap` so equal sets give equal sources.
pub type Constants = BTreeMap<&'static str, Value>;

/// The contract's constants, shared by all kernels.
pub fn contract_constants(offsets: [usize; 4]) -> Constants {
    use Value::*;
    let mut c = Constants::new();
    c.insert("ACT_FRAC", U32(fixed::ACT_FRAC));
    c.insert("ONE", I32(fixed::ONE));
    c.insert("PREACT_LIMIT", I32(fixed::PREACT_LIMIT));
    c.insert("LOGIT_LIMIT", I32(fixed::LOGIT_LIMIT));
    c.insert("GRAD_FRAC", U32(fixed::GRAD_FRAC));
    c.insert("GRAD_LIMIT", I32(fixed::GRAD_LIMIT));
    c.insert("MASTER_FRAC", U32(fixed::MASTER_FRAC));
    c.insert("MASTER_LIMIT", I32(fixed::MASTER_LIMIT));
    c.insert("ADAM_GRAD_SHIFT", U32(fixed::ADAM_GRAD_SHIFT));
    c.insert("RSQRT_FRAC", U32(fixed::RSQRT_FRAC));
    c.insert("RSQRT_ENTRIES", U32(fixed::RSQRT_ENTRIES as u32));
    c.insert("RSQRT_NORM_BITS", U32(fixed::RSQRT_NORM_BITS));
    c.insert("FREQ_TOTAL_BITS", U32(fixed::FREQ_TOTAL_BITS));
    c.insert("FREQ_TOTAL", U32(fixed::FREQ_TOTAL));
    c.insert("SYMBOLS", U32(fixed::SYMBOLS as u32));
    c.insert("TABLE_STEP_BITS", U32(fixed::TABLE_STEP_BITS));
    c.insert("TABLE_INTERVALS", U32(fixed::TABLE_INTERVALS as u32));
    // The dispatch arithmetic (`Kernel::record`, the grids of the tiled kernels) counts
    // workgroups of this many threads.
    c.insert("THREADS", U32(WORKGROUP));
    for (name, offset) in [
        "SIGMOID_OFFSET",
        "TANH_OFFSET",
        "EXP_OFFSET",
        "RSQRT_OFFSET",
    ]
    .into_iter()
    .zip(offsets)
    {
        c.insert(name, U32(offset as u32));
    }
    c
}

/// The full WGSL of kernel `name` with `constants` declared ahead of it.
pub fn render(name: &str, constants: &Constants) -> String {
    let mut out = String::new();
    for (key, value) in constants {
        let decl = match value {
            Value::U32(v) => format!("const {key}: u32 = {v}u;\n"),
            Value::I32(v) => format!("const {key}: i32 = {v}i;\n"),
            Value::Bool(v) => format!("const {key}: bool = {v};\n"),
        };
        out.push_str(&decl);
    }
    out.push_str(COMMON);
    out.push_str(source(name));
    out
}

/// How a kernel sees one of its buffers.
#[derive(Clone, Copy)]
pub enum Access {
    Read,
    ReadWrite,
}

/// A compiled kernel bound to its buffers: dispatch it with `Kernel::record`.
pub struct Kernel {
    name: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    bind_group: wgpu::BindGroup,
    /// Times every dispatch, when the backend profiles.
    profiler: Option<Arc<Profiler>>,
}

/// Bytes of `struct Step` in `shaders/common.wgsl`.
pub const STEP_BYTES: u64 = 20;

/// Threads per workgroup of every kernel but the forward ones and those of one thread per
/// symbol (their shaders' `@workgroup_size(THREADS)`; `contract_constants` injects it).
pub const WORKGROUP: u32 = 64;

/// Most workgroups one dimension of a dispatch may have on every adapter.
pub const MAX_GROUPS: usize = 65_535;

impl Kernel {
    /// Compiles kernel `name` with `constants` and binds `tables` (binding 0), `step`
    /// (binding 1) and `buffers` (bindings 2…), each with its access mode.
    pub fn new(
        device: &wgpu::Device,
        name: &'static str,
        constants: &Constants,
        tables: &wgpu::Buffer,
        step: &wgpu::Buffer,
        buffers: &[(&wgpu::Buffer, Access)],
    ) -> Kernel {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(render(name, constants).into()),
        });
        let storage = |read_only| wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        };
        let mut entries = vec![
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: storage(true),
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(STEP_BYTES),
                },
                count: None,
            },
        ];
        for (i, (_, access)) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: 2 + i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: storage(matches!(access, Access::Read)),
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let bound: Vec<&wgpu::Buffer> = buffers.iter().map(|&(b, _)| b).collect();
        let bind_group = bind(device, &layout, tables, step, &bound);
        Kernel {
            name,
            pipeline,
            layout,
            bind_group,
            profiler: None,
        }
    }

    /// This kernel with each of its dispatches timed by `profiler` (if any).
    pub fn profiled(self, profiler: Option<&Arc<Profiler>>) -> Kernel {
        Kernel {
            profiler: profiler.cloned(),
            ..self
        }
    }

    /// Records the dispatch of `groups` workgroups, between timestamps when profiling.
    fn dispatch(&self, pass: &mut wgpu::ComputePass, step_offset: u32, groups: [u32; 3]) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[step_offset]);
        let run = |pass: &mut wgpu::ComputePass| {
            pass.dispatch_workgroups(groups[0], groups[1], groups[2])
        };
        match &self.profiler {
            Some(profiler) => profiler.time(pass, self.name, run),
            None => run(pass),
        }
    }

    /// The same compiled kernel bound to other `buffers` (with the access modes `new` was
    /// given), for a kernel that alternates between buffers without compiling twice.
    pub fn rebind(
        &self,
        device: &wgpu::Device,
        tables: &wgpu::Buffer,
        step: &wgpu::Buffer,
        buffers: &[&wgpu::Buffer],
    ) -> Kernel {
        Kernel {
            name: self.name,
            pipeline: self.pipeline.clone(),
            layout: self.layout.clone(),
            bind_group: bind(device, &self.layout, tables, step, buffers),
            profiler: self.profiler.clone(),
        }
    }

    /// Records a dispatch covering `invocations` threads, reading its `struct Step` from byte
    /// `step_offset` of the step buffer.
    pub fn record(&self, pass: &mut wgpu::ComputePass, step_offset: u32, invocations: usize) {
        if invocations == 0 {
            return;
        }
        let groups = (invocations as u32).div_ceil(WORKGROUP);
        // Dispatches are one-dimensional (the shaders use only id.x) and never folded into a
        // second dimension: `GpuBackend::new` refuses a model whose largest dispatch would
        // need more than 65,535 workgroups (`largest_dispatch`).
        debug_assert!(groups as usize <= MAX_GROUPS);
        self.dispatch(pass, step_offset, [groups, 1, 1]);
    }

    /// Records a dispatch for `invocations` values of a kernel whose threads each take every
    /// value a dispatch's width apart (`output_grad`), so that any number of values takes one
    /// dispatch of at most `MAX_GROUPS` workgroups, reading its `struct Step` from byte
    /// `step_offset` of the step buffer.
    pub fn record_strided(
        &self,
        pass: &mut wgpu::ComputePass,
        step_offset: u32,
        invocations: usize,
    ) {
        let groups = invocations.div_ceil(WORKGROUP as usize).min(MAX_GROUPS);
        self.record_grid(pass, step_offset, [groups, 1]);
    }

    /// Records a dispatch of `groups` workgroups, for kernels whose workgroups each own a tile
    /// of streams (`layer_forward`, `head_softmax`) or the whole window (`symbol_order`),
    /// reading its `struct Step` from byte `step_offset` of the step buffer.
    pub fn record_groups(&self, pass: &mut wgpu::ComputePass, step_offset: u32, groups: usize) {
        self.record_grid(pass, step_offset, [groups, 1]);
    }

    /// Records a dispatch of `groups[0] × groups[1]` workgroups, for kernels whose workgroups
    /// each own a tile of two dimensions (`matrix_update`: columns × rows of a matrix;
    /// `layer_backward`: streams × columns; `input_grad`: stream-steps × columns), reading its
    /// `struct Step` from byte `step_offset` of the step buffer.
    pub fn record_grid(&self, pass: &mut wgpu::ComputePass, step_offset: u32, groups: [usize; 2]) {
        if groups.contains(&0) {
            return;
        }
        // `GpuBackend::new` refuses a model whose stream tiles would need more (`stream_tile`,
        // `backward_tile`), kernels over the window's stream-steps loop over theirs; the
        // other dimensions are at most `MAX_CELLS`-sized tensors over tiles of 16 or more.
        debug_assert!(groups.iter().all(|&g| g <= MAX_GROUPS));
        self.dispatch(pass, step_offset, [groups[0] as u32, groups[1] as u32, 1]);
    }
}

/// A bind group of `layout`: `tables` (binding 0), `step` (binding 1) and `buffers`
/// (bindings 2…, with the access modes the layout gives them).
fn bind(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    tables: &wgpu::Buffer,
    step: &wgpu::Buffer,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let mut entries = vec![
        wgpu::BindGroupEntry {
            binding: 0,
            resource: tables.as_entire_binding(),
        },
        wgpu::BindGroupEntry {
            binding: 1,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: step,
                offset: 0,
                size: wgpu::BufferSize::new(STEP_BYTES),
            }),
        },
    ];
    for (i, buffer) in buffers.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry {
            binding: 2 + i as u32,
            resource: buffer.as_entire_binding(),
        });
    }
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout,
        entries: &entries,
    })
}
