//! This process's resident memory from `/proc/self/status` (Linux), for the examples'
//! summaries; 0 where /proc has none.

/// A `/proc/self/status` size field (`VmRSS`: resident now, `VmHWM`: the peak), in bytes.
pub(crate) fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Peak resident set size (VmHWM), in bytes.
#[allow(dead_code)] // not every example reports the peak
pub(crate) fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM")
}

/// Resident set size now (VmRSS), in bytes.
#[allow(dead_code)] // not every example reports it
pub(crate) fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// Bytes in MiB, to 0.1 (null where /proc says nothing).
#[allow(dead_code)] // not every example reports in MiB
pub(crate) fn mb(bytes: u64) -> Option<f64> {
    (bytes > 0).then(|| (bytes as f64 / (1 << 20) as f64 * 10.0).round() / 10.0)
}
