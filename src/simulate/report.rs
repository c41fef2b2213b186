//! The twin's report as an operator reads it: a table in the OpenStack CLI's style.

use super::{Report, SeedsReport};

/// Rows of cells as a `+---+` framed table, numbers right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: Vec<String>, numeric: bool| {
        let cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let is_num = numeric && i > 0;
                if is_num {
                    format!(" {s:>w$} ", w = widths[i])
                } else {
                    format!(" {s:<w$} ", w = widths[i])
                }
            })
            .collect();
        format!("|{}|\n", cells.join("|"))
    };
    let mut out = rule.clone();
    out.push_str(&line(header.iter().map(|s| s.to_string()).collect(), false));
    out.push_str(&rule);
    for r in rows {
        out.push_str(&line(r.clone(), true));
    }
    out.push_str(&rule);
    out
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// The comparison table, with the scenario's size and budget on top.
pub fn render(report: &Report) -> String {
    let header = [
        "Strategy",
        "p50 steal",
        "p95 steal",
        "p99 steal",
        "p95 fair-share",
        "Unserved CPU",
        "Physical limit",
        "Migrations",
        "Aborted",
        "GiB moved",
        "Max GiB/AZ in 1 h",
        "AZ violations",
        "Worst role stacking",
    ];
    let rows: Vec<Vec<String>> = report
        .strategies
        .iter()
        .map(|s| {
            vec![
                s.strategy.clone(),
                pct(s.steal_p50),
                pct(s.steal_p95),
                pct(s.steal_p99),
                pct(s.fair_steal_p95),
                pct(s.unserved),
                pct(s.unserved_limit),
                s.migrations.to_string(),
                s.migrations_aborted.to_string(),
                format!("{:.1}", s.gib_moved),
                format!("{:.1}", s.max_gib_per_az_in_an_hour),
                s.az_violations.to_string(),
                s.worst_role_stacking.to_string(),
            ]
        })
        .collect();
    let mut out = format!(
        "scenario {}: {} hosts in {} AZs, {} VMs, {} h, seed {}; budget per AZ: a {} GiB bucket refilled at {} GiB/h; cooldown {} h\n",
        report.scenario,
        report.hosts.len(),
        report.azs,
        report.vms.len(),
        report.hours,
        report.seed,
        report.budget_burst_gib,
        report.budget_gib_per_az_per_hour,
        report.cooldown_hours
    );
    if let Some(rec) = &report.scenario_as_run.recorded {
        out.push_str(&format!("{}\n", report.description));
        for n in &rec.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
    }
    out.push_str(&table(&header, &rows));
    for s in &report.strategies {
        if s.unplaced > 0 {
            out.push_str(&format!(
                "{}: {} VM(s) found no host with room at boot\n",
                s.strategy, s.unplaced
            ));
        }
        if s.migrations == 0 {
            continue;
        }
        let budget = if s.budget_respected {
            "byte budget kept in every AZ"
        } else {
            "BYTE BUDGET EXCEEDED"
        };
        let cooldown = match (s.cooldown_respected, s.min_hours_between_moves_of_a_vm) {
            (true, None) => "no VM moved twice".to_string(),
            (true, Some(g)) => format!("no VM moved twice within the cooldown (closest {g:.1} h)"),
            (false, g) => format!(
                "A VM MOVED TWICE WITHIN THE COOLDOWN ({:.1} h apart)",
                g.unwrap_or(0.0)
            ),
        };
        out.push_str(&format!("{}: {budget}; {cooldown}\n", s.strategy));
    }
    out
}

/// Every strategy's figures over the seeds: min / median / max.
pub fn render_seeds(report: &SeedsReport) -> String {
    let cols: [(&str, &str, bool); 8] = [
        ("p95 steal", "steal_p95", true),
        ("p95 fair-share steal", "fair_steal_p95", true),
        ("Unserved CPU", "unserved", true),
        ("Physical limit", "unserved_limit", true),
        ("p95 / best Nova", "p95_vs_nova", true),
        ("Fair p95 / best Nova", "fair_p95_vs_nova", true),
        ("Unserved gap closed", "unserved_gap_closed", true),
        ("Migrations", "migrations", false),
    ];
    let mut header = vec!["Strategy"];
    header.extend(cols.iter().map(|c| c.0));
    let rows: Vec<Vec<String>> = report
        .strategies
        .iter()
        .map(|s| {
            let mut row = vec![s.strategy.clone()];
            for (_, key, percent) in cols {
                row.push(s.figures.get(key).map_or_else(String::new, |f| {
                    let v = |x: f64| {
                        if percent {
                            format!("{:.1}", x * 100.0)
                        } else {
                            format!("{x:.0}")
                        }
                    };
                    format!("{} / {} / {}", v(f.min), v(f.median), v(f.max))
                }));
            }
            row
        })
        .collect();
    let seeds = match (report.seeds.first(), report.seeds.last()) {
        (Some(a), Some(b)) => format!("seeds {a}..{b}"),
        _ => "no seeds".into(),
    };
    let mut out = format!(
        "scenario {}: {} hosts, {} VMs, {} h, {} ({} runs); min / median / max over the seeds, in % except migrations\n",
        report.scenario,
        report.hosts,
        report.vms,
        report.hours,
        seeds,
        report.seeds.len()
    );
    out.push_str(&table(&header, &rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_frames_and_aligns() {
        let t = table(
            &["Name", "N"],
            &[
                vec!["a".into(), "1".into()],
                vec!["bbb".into(), "22".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "+------+----+");
        assert_eq!(lines[1], "| Name | N  |");
        assert_eq!(lines[3], "| a    |  1 |");
        assert_eq!(lines[4], "| bbb  | 22 |");
        assert_eq!(lines.len(), 6);
    }
}
