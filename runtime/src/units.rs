//! Byte counts for people, in the 1024-based units weir's size options
//! read (`512M` is 512 MiB), so a size goes out as it came in.

/// `bytes` as `332 KiB`, `11.8 MiB` or `1.40 GiB`.
pub fn bytes(bytes: u64) -> String {
    let b = bytes as f64;
    const KI: f64 = 1024.0;
    if b < KI * KI {
        format!("{:.0} KiB", b / KI)
    } else if b < KI * KI * KI {
        format!("{:.1} MiB", b / (KI * KI))
    } else {
        format!("{:.2} GiB", b / (KI * KI * KI))
    }
}

/// The default memory budget of a process: a quarter of the memory
/// available to this machine (`MemAvailable`), or 1 GiB where that cannot be
/// read.
pub fn default_memory_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kb| kb * 1024 / 4)
        .unwrap_or(1 << 30)
}
