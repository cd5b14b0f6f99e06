//! The summary of a results file: medians per server, the gateway/s3s-fs ratio of each round
//! and its median against the project's floor, latency percentiles, the machine's limits, the
//! gateway's peak memory and any errors. Printed as Markdown tables.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use crate::workload::median;

const GATEWAY: &str = "gateway";
const REFERENCE: &str = "s3s-fs";

/// The project's floors: gateway figure / s3s-fs figure in the same run.
const FLOORS: &[(&str, &str, f64)] = &[
    ("put_4k_c1", "4 KiB PUT, 1 client", 1.5),
    ("get_4k_c1", "4 KiB GET, 1 client", 1.0),
    ("put_4k_c16", "4 KiB PUT, 16 clients", 1.5),
    ("get_4k_c16", "4 KiB GET, 16 clients", 1.2),
    ("put_64m_c4", "64 MiB PUT, 4 clients", 1.0),
    ("get_64m_c4", "64 MiB GET, 4 clients", 3.0),
    ("multipart_1g", "1 GiB multipart, 5 MiB parts, 4 in flight", 2.5),
    ("list_10k", "list 10,000 keys, pages of 1,000", 10.0),
];

/// The gateway's peak resident memory while moving one huge object, in MiB.
const RSS_FLOOR_MIB: f64 = 64.0;

/// Prints the summary of the JSON lines in `path`.
pub fn print(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parse {}", path.display()))?;
    let results = Results { lines };

    println!("| workload | unit | gateway | s3s-fs | ratio per round | ratio (median) | floor | |");
    println!("|---|---|---:|---:|---|---:|---:|---|");
    for &(workload, label, floor) in FLOORS {
        let ratios = results.ratios(workload);
        let ratio = median(&mut ratios.clone());
        let verdict = if ratio.is_nan() {
            "no data"
        } else if ratio >= floor {
            "meets floor"
        } else {
            "BELOW floor"
        };
        let per_round: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "| {label} | {} | {:.1} | {:.1} | {} | {ratio:.2}x | {floor:.1}x | {verdict} |",
            results.unit(workload),
            results.median(GATEWAY, workload, "value"),
            results.median(REFERENCE, workload, "value"),
            per_round.join(" "),
        );
    }

    println!();
    println!("| 4 KiB latency (ms, median of rounds) | gateway p50 | gateway p99 | s3s-fs p50 | s3s-fs p99 |");
    println!("|---|---:|---:|---:|---:|");
    for &(workload, label, _) in FLOORS.iter().filter(|(w, ..)| w.contains("_4k_")) {
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
            results.median(GATEWAY, workload, "p50_ms"),
            results.median(GATEWAY, workload, "p99_ms"),
            results.median(REFERENCE, workload, "p50_ms"),
            results.median(REFERENCE, workload, "p99_ms"),
        );
    }

    println!();
    println!(
        "CompleteMultipartUpload of the 1 GiB upload (median of rounds): gateway {:.3} s, s3s-fs {:.3} s",
        results.median(GATEWAY, "multipart_1g", "complete_seconds"),
        results.median(REFERENCE, "multipart_1g", "complete_seconds"),
    );

    println!();
    println!("| machine limit (median of rounds) | value | unit |");
    println!("|---|---:|---|");
    for (workload, label) in [
        ("dd_fsync", "disk write, 1 GiB then fsync (dd bs=1M conv=fsync)"),
        ("dd_4k_dsync", "disk write, 4 KiB each made durable (dd bs=4k oflag=dsync)"),
        ("loopback_get", "loopback HTTP GET of a 1 GiB cached file (hyper to hyper)"),
    ] {
        let (value, unit) = (results.median("machine", workload, "value"), results.unit_of("machine", workload));
        println!("| {label} | {value:.0} | {unit} |");
    }

    for line in results.lines.iter().filter(|l| l["workload"] == "rss_huge") {
        let mib = |field: &str| line[field].as_f64().unwrap_or(f64::NAN);
        let peak = mib("put_vmhwm_mib").max(mib("get_vmhwm_mib"));
        let verdict = match line["target"] == GATEWAY {
            false => String::new(),
            true if peak < RSS_FLOOR_MIB => format!(" (floor: under {RSS_FLOOR_MIB:.0} MiB: meets floor)"),
            true => format!(" (floor: under {RSS_FLOOR_MIB:.0} MiB: ABOVE floor)"),
        };
        println!();
        println!(
            "{} peak RSS with a {} GiB object: PUT {:.0} MiB, GET {:.0} MiB{verdict}",
            line["target"].as_str().unwrap_or("?"),
            line["gib"],
            mib("put_vmhwm_mib"),
            mib("get_vmhwm_mib"),
        );
    }

    let loads: Vec<f64> = results.lines.iter().filter_map(|l| l["load1"].as_f64()).collect();
    if !loads.is_empty() {
        let (low, high) = loads.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &l| (lo.min(l), hi.max(l)));
        println!();
        println!("1-minute load average during the workloads: {low:.2} to {high:.2}");
    }

    for line in results.lines.iter().filter(|l| l["errors"].as_u64().unwrap_or(0) > 0 || !l["first_error"].is_null()) {
        println!(
            "ERRORS: {} round {} {}: {} failed; first: {}",
            line["target"], line["round"], line["workload"], line["errors"], line["first_error"]
        );
    }
    Ok(())
}

struct Results {
    lines: Vec<Value>,
}

impl Results {
    fn of<'a>(&'a self, target: &'a str, workload: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |l| l["target"] == target && l["workload"] == workload)
    }

    fn median(&self, target: &str, workload: &str, field: &str) -> f64 {
        median(&mut self.of(target, workload).filter_map(|l| l[field].as_f64()).collect::<Vec<_>>())
    }

    fn unit_of(&self, target: &str, workload: &str) -> String {
        self.of(target, workload).find_map(|l| l["unit"].as_str()).unwrap_or("").to_owned()
    }

    fn unit(&self, workload: &str) -> String {
        self.of(GATEWAY, workload)
            .chain(self.of(REFERENCE, workload))
            .find_map(|l| l["unit"].as_str())
            .unwrap_or("")
            .to_owned()
    }

    /// gateway / s3s-fs for each round that has both.
    fn ratios(&self, workload: &str) -> Vec<f64> {
        let by_round = |target| -> BTreeMap<u64, f64> {
            self.of(target, workload).filter_map(|l| Some((l["round"].as_u64()?, l["value"].as_f64()?))).collect()
        };
        let reference = by_round(REFERENCE);
        by_round(GATEWAY).into_iter().filter_map(|(round, g)| Some(g / reference.get(&round)?)).collect()
    }
}
