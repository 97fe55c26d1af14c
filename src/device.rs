//! Where tensors live: the flex CPU backend by default, a GPU backend when the crate is built
//! with one (`--features wgpu`, `vulkan` or `cuda`). The same model code runs on every device;
//! only the [`Device`] handed to [`crate::model::Siamese::new`] / `load` changes.
//!
//! ```
//! use siamese::device::DeviceChoice;
//!
//! let cpu: DeviceChoice = "cpu".parse().unwrap();
//! assert!(cpu.device().is_ok());
//! assert!("tpu".parse::<DeviceChoice>().is_err());
//! ```

use burn::tensor::Device;

use crate::error::{Result, SiameseError};

/// A device named on the command line (`--device`) or in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The flex CPU backend (pure Rust, SIMD + gemm, rayon threads).
    Cpu,
    /// The first GPU backend this build has (cuda, then vulkan, then wgpu).
    Gpu,
    /// wgpu on its automatically chosen graphics API.
    Wgpu,
    /// wgpu pinned to Vulkan.
    Vulkan,
    /// CUDA.
    Cuda,
}

/// GPU backends compiled into this build, in order of preference.
pub fn gpu_backends() -> Vec<&'static str> {
    let mut out = Vec::new();
    if cfg!(feature = "cuda") {
        out.push("cuda");
    }
    if cfg!(feature = "vulkan") {
        out.push("vulkan");
    }
    if cfg!(feature = "wgpu") {
        out.push("wgpu");
    }
    out
}

impl std::str::FromStr for DeviceChoice {
    type Err = SiameseError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Self::Cpu,
            "gpu" => Self::Gpu,
            "wgpu" => Self::Wgpu,
            "vulkan" => Self::Vulkan,
            "cuda" => Self::Cuda,
            other => {
                return Err(SiameseError::config(
                    "device",
                    format!("unknown device `{other}`; expected cpu, gpu, wgpu, vulkan or cuda"),
                ));
            }
        })
    }
}

fn not_built(name: &str) -> SiameseError {
    let built = gpu_backends();
    SiameseError::config(
        "device",
        format!(
            "this build has no {name} backend (GPU backends built in: {}); rebuild with \
             `cargo build --release --features {}`",
            if built.is_empty() {
                "none".to_string()
            } else {
                built.join(", ")
            },
            if name == "GPU" { "vulkan" } else { name }
        ),
    )
}

impl DeviceChoice {
    /// The burn device, or a clear error when this build lacks the backend.
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            Self::Gpu => match gpu_backends().first() {
                Some(&"cuda") => Self::Cuda.device(),
                Some(&"vulkan") => Self::Vulkan.device(),
                Some(_) => Self::Wgpu.device(),
                None => Err(not_built("GPU")),
            },
            #[cfg(feature = "wgpu")]
            Self::Wgpu => probe(
                Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
                "wgpu",
            ),
            #[cfg(feature = "vulkan")]
            Self::Vulkan => probe(
                Device::vulkan(burn::tensor::DeviceKind::DefaultDevice),
                "Vulkan",
            ),
            #[cfg(feature = "cuda")]
            Self::Cuda => probe(Device::cuda(0), "CUDA"),
            #[allow(unreachable_patterns)]
            other => Err(not_built(match other {
                Self::Wgpu => "wgpu",
                Self::Vulkan => "vulkan",
                _ => "cuda",
            })),
        }
    }
}

/// Runs one tiny operation on a GPU `device` so that a missing adapter or driver becomes a
/// clear error here instead of a panic deep inside the backend at the first real operation.
#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "cuda"))]
fn probe(device: Device, name: &str) -> Result<Device> {
    use burn::tensor::Tensor;
    // The default panic hook prints the backend's message once; the global hook is left as
    // it is (a library must not swap it).
    let probe_device = device.clone();
    let outcome = std::panic::catch_unwind(move || {
        Tensor::<1>::from_floats([1.0f32, 2.0], &probe_device)
            .sum()
            .into_scalar::<f32>()
    });
    match outcome {
        Ok(v) if v == 3.0 => Ok(device),
        Ok(v) => Err(SiameseError::Runtime(format!(
            "the {name} device computed 1 + 2 = {v}; refusing to use it"
        ))),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the backend failed to start".into());
            Err(SiameseError::Runtime(format!(
                "no usable {name} device ({why}); is a GPU with its driver and loader present? \
                 `--device cpu` runs on the CPU"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_missing_backends_are_explained() {
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("gpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Gpu);
        let err = "tpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(err.contains("device") && err.contains("tpu"), "{err}");
        if gpu_backends().is_empty() {
            let err = DeviceChoice::Gpu.device().unwrap_err().to_string();
            assert!(err.contains("--features vulkan"), "{err}");
            assert!(DeviceChoice::Cuda.device().is_err());
        }
    }
}
