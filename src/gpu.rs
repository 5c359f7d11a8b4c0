//! The machine's NVIDIA GPUs through NVML (the driver's library, loaded at run time: a machine
//! without it simply has none). Used by the TUI's system strip, the supervisor's GPU slots and
//! the GPU bench.

/// One GPU as NVML reports it now.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuStat {
    pub index: usize,
    pub name: String,
    pub util_pct: f64,
    pub mem_used_gb: f64,
    pub mem_total_gb: f64,
}

fn nvml() -> Option<&'static nvml_wrapper::Nvml> {
    use std::sync::OnceLock;
    static NVML: OnceLock<Option<nvml_wrapper::Nvml>> = OnceLock::new();
    NVML.get_or_init(|| nvml_wrapper::Nvml::init().ok()).as_ref()
}

/// Every GPU's utilisation and memory (empty without a driver).
pub fn sample() -> Vec<GpuStat> {
    let Some(nvml) = nvml() else {
        return Vec::new();
    };
    let n = nvml.device_count().unwrap_or(0);
    (0..n)
        .filter_map(|i| {
            let d = nvml.device_by_index(i).ok()?;
            let mem = d.memory_info().ok()?;
            Some(GpuStat {
                index: i as usize,
                name: d.name().unwrap_or_default(),
                util_pct: d.utilization_rates().map_or(0.0, |u| u.gpu as f64),
                mem_used_gb: mem.used as f64 / (1u64 << 30) as f64,
                mem_total_gb: mem.total as f64 / (1u64 << 30) as f64,
            })
        })
        .collect()
}

/// Dense bf16 tensor-core peak of a GPU in TFLOP/s, from its name (the datasheet figures
/// without sparsity), for MFU. `MIXSCOPE_PEAK_TFLOPS` overrides; unknown cards give `None`.
pub fn peak_bf16_tflops(name: &str) -> Option<f64> {
    if let Some(v) = std::env::var("MIXSCOPE_PEAK_TFLOPS").ok().and_then(|v| v.parse().ok()) {
        return Some(v);
    }
    let n = name.to_ascii_uppercase();
    let table: [(&str, f64); 8] = [
        ("H200", 989.4),
        ("H100 PCIE", 756.0),
        ("H100", 989.4),
        ("GH200", 989.4),
        ("A100", 312.0),
        ("L40S", 362.0),
        ("A10G", 70.0),
        ("RTX 4090", 165.2),
    ];
    table.iter().find(|(k, _)| n.contains(k)).map(|&(_, v)| v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peaks_by_name() {
        assert_eq!(super::peak_bf16_tflops("NVIDIA H100 80GB HBM3"), Some(989.4));
        assert_eq!(super::peak_bf16_tflops("NVIDIA H100 PCIe"), Some(756.0));
        assert_eq!(super::peak_bf16_tflops("NVIDIA H200"), Some(989.4));
        assert_eq!(super::peak_bf16_tflops("Some GPU"), None);
    }
}
