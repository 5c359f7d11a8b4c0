//! The system strip's figures: CPU and memory from `/proc` (Linux), and the GPUs (NVML),
//! sampled by the collector once a second.

/// CPU and memory of the machine (and GPUs when known).
#[derive(Debug, Clone, Default)]
pub struct SystemStats {
    pub cpu_pct: Option<f64>,
    pub cores: usize,
    pub mem_used_gb: f64,
    pub mem_total_gb: f64,
    pub gpus: Vec<GpuStat>,
    last_cpu: Option<(u64, u64)>,
}

pub use crate::gpu::GpuStat;

impl SystemStats {
    /// Sample /proc (Linux); other systems show nothing.
    pub fn sample(&mut self) {
        self.cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        if let Ok(s) = std::fs::read_to_string("/proc/stat") {
            if let Some(line) = s.lines().next() {
                let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
                if v.len() >= 4 {
                    let idle = v[3] + v.get(4).copied().unwrap_or(0);
                    let total: u64 = v.iter().take(8).sum();
                    if let Some((pi, pt)) = self.last_cpu {
                        let (di, dt) = (idle.saturating_sub(pi), total.saturating_sub(pt));
                        if dt > 0 {
                            self.cpu_pct = Some(100.0 * (1.0 - di as f64 / dt as f64));
                        }
                    }
                    self.last_cpu = Some((idle, total));
                }
            }
        }
        if let Ok(m) = std::fs::read_to_string("/proc/meminfo") {
            let get = |k: &str| {
                m.lines()
                    .find(|l| l.starts_with(k))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            self.mem_total_gb = get("MemTotal:") / 1048576.0;
            self.mem_used_gb = (get("MemTotal:") - get("MemAvailable:")) / 1048576.0;
        }
        self.gpus = crate::gpu::sample();
    }
}
