//! The kernel's tick rate, which the program's timeouts are counted in.

use std::time::Duration;

/// The kernel's tick rate (HZ), measured once per process from `/proc/timer_list` (50 ms of
/// jiffies, rounded to the nearest usual value). Falls back to 1000, the highest usual value,
/// so that timeouts are never shorter than documented (only longer, on a slower-ticking
/// kernel).
pub fn kernel_hz() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| measure_hz().unwrap_or(1000))
}

fn read_jiffies() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/timer_list").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("jiffies: "))
        .and_then(|v| v.trim().parse().ok())
}

fn measure_hz() -> Option<u64> {
    let t0 = std::time::Instant::now();
    let j0 = read_jiffies()?;
    std::thread::sleep(Duration::from_millis(50));
    let j1 = read_jiffies()?;
    let rate = (j1.checked_sub(j0)? as f64) / t0.elapsed().as_secs_f64();
    [100u64, 250, 300, 1000].into_iter().min_by(|a, b| {
        (*a as f64 - rate)
            .abs()
            .total_cmp(&(*b as f64 - rate).abs())
    })
}
