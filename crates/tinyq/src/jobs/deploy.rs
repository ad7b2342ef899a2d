//! The report job's limits and its JSON form, shared by every front end.

use serde_json::json;

use crate::{check_fit, find_board, parse_size, Board, Limits, Overrun, Report, TinyqError};

impl Limits {
    /// Limits from a board name and budgets written as sizes (`64KiB`, `1MiB`, `4096`).
    pub fn parse(
        device: Option<&str>,
        ram_budget: Option<&str>,
        flash_budget: Option<&str>,
    ) -> Result<Limits, TinyqError> {
        let size = |flag: &str, v: Option<&str>| -> Result<Option<u64>, TinyqError> {
            v.map(|s| {
                parse_size(s).ok_or_else(|| {
                    TinyqError::Input(format!("{flag} `{s}`: expected a size such as 64KiB, 1MiB or 4096"))
                })
            })
            .transpose()
        };
        let board = device
            .map(|d| {
                find_board(d).ok_or_else(|| {
                    TinyqError::Input(format!(
                        "--device `{d}`: unknown board (`tinyq report --list-devices` lists them)"
                    ))
                })
            })
            .transpose()?;
        Ok(Limits {
            board,
            ram_bytes: size("--ram-budget", ram_budget)?,
            flash_bytes: size("--flash-budget", flash_budget)?,
        })
    }
}

/// A report checked against limits: [`Report`] plus what does not fit.
pub struct Fit {
    pub report: Report,
    pub board: Option<&'static Board>,
    pub overruns: Vec<Overrun>,
}

impl Fit {
    pub fn new(report: Report, limits: &Limits) -> Fit {
        let overruns = check_fit(&report, limits);
        Fit { report, board: limits.board, overruns }
    }

    /// The report as `tinyq report --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(&self.report).unwrap_or_default();
        body["fits"] = json!(self.overruns.is_empty());
        body["overruns"] = json!(self.overruns);
        if let Some(b) = self.board {
            body["measured_at_device_clock"] = measured_at_clock(&self.report, b);
        }
        body
    }
}

/// The latency measured by `tinyq verify`, at the board's clock (null when not measured).
pub fn measured_at_clock(r: &Report, board: &Board) -> serde_json::Value {
    match r.measured.as_ref().and_then(|m| m.cycles_per_inference_estimate) {
        Some(c) => {
            json!({ "ms_per_inference_estimate": c / (board.clock_mhz as f64 * 1000.0), "clock_mhz": board.clock_mhz })
        }
        None => serde_json::Value::Null,
    }
}
