//! What the commands print: JSON for scripts and `jq`, aligned tables and short lines for
//! people.

use serde_json::Value;

/// Prints JSON for people and for `jq`.
pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON prints"));
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// The items of a JSON array answer (none for anything else).
pub fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A member of an answer as a table cell (`-` when absent).
pub fn cell(value: &Value, key: &str) -> String {
    value[key].as_str().filter(|text| !text.is_empty()).unwrap_or("-").to_owned()
}
