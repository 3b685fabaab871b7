//! Plain-text tables for the operator commands.

/// Left-aligned columns of at least `widths[i]` characters (the last one unpadded).
pub fn render(headers: &[&str], widths: &[usize], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 < cells.len() {
                let width = widths.get(i).copied().unwrap_or(0);
                out.push_str(&format!("{cell:<width$}  "));
            } else {
                out.push_str(cell);
            }
        }
        out
    };
    let mut lines = vec![line(&headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())];
    lines.extend(rows.into_iter().map(|r| line(&r)));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let t = super::render(&["a", "b"], &[3], vec![vec!["x".into(), "y".into()]]);
        assert_eq!(t, "a    b\nx    y");
    }
}
