//! `sutazai metrics --watch` (a live terminal view of a running server: host, GPUs,
//! tasks, busiest agents, firing alerts, refreshed every interval) and `sutazai metrics
//! --series METRIC` (a stored time series as a table). Client commands: they read the same
//! API as everyone else.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::client::ApiClient;
use crate::output::{self, Table};

/// Eight heights for sparklines.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// Samples in a sparkline.
const SPARK: usize = 60;

/// `values` (0 to `max`) as a sparkline of at most [`SPARK`] characters.
pub(crate) fn sparkline(values: &[f64], max: f64) -> String {
    let start = values.len().saturating_sub(SPARK);
    values[start..]
        .iter()
        .map(|v| {
            let f = if max > 0.0 && v.is_finite() {
                (v / max).clamp(0.0, 1.0)
            } else {
                0.0
            };
            BARS[((f * (BARS.len() - 1) as f64).round() as usize).min(BARS.len() - 1)]
        })
        .collect()
}

/// Bytes as `512 B`, `1.5 KiB`, `3.2 GiB`.
pub(crate) fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// One frame of the live view from the server's answers.
pub(crate) fn frame(host: &Value, status: &Value, agents: &Value, alerts: &Value) -> String {
    let mut out = String::new();
    let latest = &host["latest"];
    let history = host["history"].as_array().cloned().unwrap_or_default();
    let series = |key: &str| -> Vec<f64> { history.iter().map(|h| num(&h[key])).collect() };
    let _ = writeln!(
        out,
        "SutazAI — {} (health {})   {}",
        status["status"].as_str().unwrap_or("?"),
        output::percent(status["system_health"].as_f64()),
        latest["at"].as_str().unwrap_or("")
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CPU     {:>5.1}%  {}",
        num(&latest["cpu_percent"]),
        sparkline(&series("cpu_percent"), 100.0)
    );
    let _ = writeln!(
        out,
        "Memory  {:>5.1}%  {}  {} of {}",
        num(&latest["memory_percent"]),
        sparkline(&series("memory_percent"), 100.0),
        bytes(num(&latest["memory_used_bytes"])),
        bytes(num(&latest["memory_total_bytes"]))
    );
    let load = &latest["load_average"];
    let _ = writeln!(
        out,
        "Load    {:.2} {:.2} {:.2}",
        num(&load[0]),
        num(&load[1]),
        num(&load[2])
    );
    let (rx, tx) = latest["networks"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter(|i| i["interface"] != "lo")
                .fold((0.0, 0.0), |(rx, tx), i| {
                    (
                        rx + num(&i["rx_bytes_per_second"]),
                        tx + num(&i["tx_bytes_per_second"]),
                    )
                })
        })
        .unwrap_or((0.0, 0.0));
    let _ = writeln!(out, "Network ↓ {}/s  ↑ {}/s", bytes(rx), bytes(tx));
    for d in latest["disks"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "Disk    {:>5.1}%  {} ({} free)",
            num(&d["used_percent"]),
            d["mount"].as_str().unwrap_or("?"),
            bytes(num(&d["available_bytes"]))
        );
    }
    for g in latest["gpus"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "GPU {}   {:>5.1}%  VRAM {:.1}% ({} of {}) {}",
            g["index"],
            num(&g["utilization_percent"]),
            num(&g["memory_percent"]),
            bytes(num(&g["memory_used_bytes"])),
            bytes(num(&g["memory_total_bytes"])),
            g["temperature_celsius"]
                .as_f64()
                .map(|t| format!("{t:.0}°C"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Tasks   {} active, {} queued, {} awaiting approval; {} completed, {} failed",
        status["active_tasks"],
        status["queued_tasks"],
        status["awaiting_approval"],
        status["tasks"]["completed"],
        status["tasks"]["failed"]
    );
    let _ = writeln!(
        out,
        "Bus     {} messages/min, {} dead letters",
        status["message_bus"]["messages_per_minute"], status["message_bus"]["dead_letters"]
    );
    let mut busy: Vec<&Value> = agents["agents"]
        .as_array()
        .or_else(|| agents.as_array())
        .into_iter()
        .flatten()
        .filter(|a| {
            num(&a["completed_steps"]) + num(&a["failed_steps"]) > 0.0
                || num(&a["active_steps"]) > 0.0
        })
        .collect();
    busy.sort_by(|a, b| {
        (num(&b["active_steps"]), num(&b["completed_steps"]))
            .partial_cmp(&(num(&a["active_steps"]), num(&a["completed_steps"])))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !busy.is_empty() {
        let mut table = Table::new(&[
            "AGENT", "STATUS", "ACTIVE", "DONE", "FAILED", "SUCCESS", "MEAN",
        ]);
        for a in busy.into_iter().take(8) {
            table.row(vec![
                a["id"].as_str().unwrap_or("").to_owned(),
                a["status"].as_str().unwrap_or("").to_owned(),
                a["active_steps"].to_string(),
                a["completed_steps"].to_string(),
                a["failed_steps"].to_string(),
                output::percent(a["success_rate"].as_f64()),
                a["average_response_time"]
                    .as_f64()
                    .map_or_else(|| "-".to_owned(), output::duration),
            ]);
        }
        let _ = writeln!(out);
        out.push_str(&table.render());
    }
    let firing = alerts["alerts"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out);
    if firing.is_empty() {
        let _ = writeln!(out, "Alerts  none firing");
    } else {
        let _ = writeln!(out, "Alerts  {} firing", firing.len());
        for a in firing.iter().take(5) {
            let _ = writeln!(
                out,
                "  [{}] {}{}",
                a["severity"].as_str().unwrap_or("?"),
                a["message"].as_str().unwrap_or(""),
                if a["acknowledged"] == true {
                    " (acknowledged)"
                } else {
                    ""
                }
            );
        }
    }
    out
}

/// Redraws the live view every `interval` until Ctrl-C (or after `frames` frames).
pub(crate) async fn watch(
    client: &ApiClient,
    interval: Duration,
    frames: Option<u64>,
) -> anyhow::Result<()> {
    let mut shown = 0u64;
    let firing = [("status", Some("firing".to_owned()))];
    loop {
        let (host, status, agents, alerts) = tokio::try_join!(
            client.get(&["monitoring", "host"], &[]),
            client.get(&["status"], &[]),
            client.get(&["agents"], &[]),
            client.get(&["alerts"], &firing),
        )?;
        let text = frame(&host, &status, &agents, &alerts);
        // Clear the screen and home the cursor before each frame.
        output::emit(&format!("\x1b[H\x1b[2J{text}")).context("writing the view")?;
        shown += 1;
        if frames.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Prints a stored series (`GET /monitoring/series`) as a table.
pub(crate) async fn series(
    client: &ApiClient,
    metric: &str,
    subject: Option<String>,
    since: Duration,
    step: Option<u64>,
    json_output: bool,
) -> anyhow::Result<()> {
    let start =
        chrono::Utc::now() - chrono::TimeDelta::from_std(since).context("--since is too long")?;
    let value = client
        .get(
            &["monitoring", "series"],
            &[
                ("metric", Some(metric.to_owned())),
                ("subject", subject),
                ("start", Some(start.to_rfc3339())),
                ("step", step.map(|s| s.to_string())),
            ],
        )
        .await?;
    if json_output {
        let text = serde_json::to_string_pretty(&value).context("formatting JSON")?;
        output::emit_line(&text)?;
        return Ok(());
    }
    let series = value["series"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        output::emit_line(&format!("no points of {metric} in that range"))?;
        return Ok(());
    }
    let mut table = Table::new(&["SUBJECT", "TIME", "AVG", "MIN", "MAX", "SAMPLES"]);
    for s in &series {
        for p in s["points"].as_array().into_iter().flatten() {
            let t = p["t"]
                .as_i64()
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| output::local_time(&t))
                .unwrap_or_default();
            table.row(vec![
                s["subject"].as_str().unwrap_or("").to_owned(),
                t,
                format!("{:.3}", num(&p["avg"])),
                format!("{:.3}", num(&p["min"])),
                format!("{:.3}", num(&p["max"])),
                p["count"].to_string(),
            ]);
        }
    }
    output::emit(&table.render())?;
    output::emit_line(&format!(
        "step {} s (stored resolution {} s)",
        value["step"], value["resolution"]
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sparklines_and_sizes() {
        assert_eq!(
            sparkline(&[0.0, 50.0, 100.0, 200.0, f64::NAN], 100.0),
            "▁▅██▁"
        );
        assert_eq!(sparkline(&vec![1.0; 100], 1.0).chars().count(), SPARK);
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0 * 1024.0), "3.5 GiB");
    }

    #[test]
    fn a_frame_shows_host_tasks_agents_and_alerts() {
        let host = json!({
            "latest": {"at": "2026-11-24T10:00:00Z", "cpu_percent": 12.5, "memory_percent": 40.0,
                "memory_used_bytes": 4.0 * 1024.0 * 1024.0 * 1024.0, "memory_total_bytes": 10.0 * 1024.0 * 1024.0 * 1024.0,
                "load_average": [0.5, 0.4, 0.3],
                "networks": [{"interface": "lo", "rx_bytes_per_second": 9e9, "tx_bytes_per_second": 9e9},
                             {"interface": "eth0", "rx_bytes_per_second": 2048.0, "tx_bytes_per_second": 1024.0}],
                "disks": [{"mount": "/", "used_percent": 55.0, "available_bytes": 1024.0}],
                "gpus": [{"index": 0, "utilization_percent": 80.0, "memory_percent": 50.0,
                          "memory_used_bytes": 1024.0, "memory_total_bytes": 2048.0, "temperature_celsius": 61.0}]},
            "history": [{"cpu_percent": 0.0}, {"cpu_percent": 100.0}]
        });
        let status = json!({"status": "healthy", "system_health": 1.0, "active_tasks": 1, "queued_tasks": 2,
            "awaiting_approval": 0, "tasks": {"completed": 5, "failed": 1},
            "message_bus": {"messages_per_minute": 7, "dead_letters": 0}});
        let agents = json!({"agents": [
            {"id": "idle", "status": "healthy", "completed_steps": 0, "failed_steps": 0, "active_steps": 0},
            {"id": "coder", "status": "healthy", "completed_steps": 4, "failed_steps": 1, "active_steps": 1,
             "success_rate": 0.8, "average_response_time": 1.5}]});
        let alerts = json!({"alerts": [{"severity": "warning", "message": "agent coder error rate is 20% (above 5%)", "acknowledged": true}]});
        let text = frame(&host, &status, &agents, &alerts);
        for expected in [
            "healthy (health 100%)",
            "CPU      12.5%  ▁█",
            "4.0 GiB of 10.0 GiB",
            "Network ↓ 2.0 KiB/s  ↑ 1.0 KiB/s",
            "Disk     55.0%  / (1.0 KiB free)",
            "GPU 0    80.0%  VRAM 50.0% (1.0 KiB of 2.0 KiB) 61°C",
            "1 active, 2 queued, 0 awaiting approval; 5 completed, 1 failed",
            "coder",
            "Alerts  1 firing",
            "agent coder error rate is 20% (above 5%) (acknowledged)",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        assert!(!text.contains("idle"), "idle agents are left out:\n{text}");
    }
}
