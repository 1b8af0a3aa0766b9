//! Devices and the RAII guard of a worker's device context.

use std::fmt;

use crate::{Error, Result};

/// Where a plan runs. The same shape with or without the `cuda` feature; without it,
/// preparing for `Cuda` is [`Error::Device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// A CUDA GPU, by ordinal.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Device {
    /// `Cuda(0)` when a CUDA backend is compiled in and a GPU is present, else `Cpu`. No
    /// CUDA backend exists yet, so this is `Cpu`.
    pub fn cuda_if_available() -> Device {
        Device::Cpu
    }

    /// Opens this device's context for one worker; the guard releases it when dropped.
    ///
    /// # Errors
    /// [`Error::Device`] for a CUDA device: without the `cuda` feature it is not compiled
    /// in; with it, the backend does not exist yet.
    pub fn open(self) -> Result<DeviceContext> {
        match self {
            Device::Cpu => Ok(DeviceContext { device: self }),
            Device::Cuda(_) => Err(Error::Device {
                device: self.to_string(),
                reason: if cfg!(feature = "cuda") {
                    "the CUDA backend is not implemented yet".into()
                } else {
                    "CUDA support is not compiled in (enable the `cuda` feature)".into()
                },
            }),
        }
    }
}

/// A device context held by one session for its whole life and reused for every call, so a
/// context can neither leak nor be created per request. Dropping it releases the context.
#[derive(Debug)]
pub struct DeviceContext {
    device: Device,
}

impl DeviceContext {
    /// The device.
    pub fn device(&self) -> Device {
        self.device
    }
}
