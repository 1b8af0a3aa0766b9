//! PyTorch checkpoints, read by a restricted unpickler written for this crate.
//!
//! Nothing here imports or calls anything: a pickle's `GLOBAL`s are matched against a fixed
//! allow-list (`collections.OrderedDict`, the `torch._utils._rebuild_*` functions, the storage
//! classes and dtypes) and anything else is [`Error::ForbiddenGlobal`](crate::Error). Calls
//! (`REDUCE`) of allowed globals are interpreted, never executed.

pub(crate) mod machine;
pub(crate) mod torch;
pub(crate) mod torch_legacy;
pub(crate) mod torch_zip;
