//! Text for the page: HTML escaping, JSON that is safe inside `<script>`, number formatting.

/// Escapes text for HTML content and attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text that can sit inside a `<script>` element: `<`, `>` and `&` (which only occur inside
/// JSON strings) become `\u` escapes, so no `</script>` or `<!--` can end or confuse the element,
/// and U+2028/U+2029 are escaped for older JavaScript parsers. The value parses to the same JSON.
pub fn script_json(v: &serde_json::Value) -> String {
    let text = serde_json::to_string(v).expect("serde_json::Value always serializes");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// At most `chars` characters, the middle replaced by `…` when longer. Tensor names from
/// converters are long, share their beginning and differ at the end, so the end gets two thirds.
pub fn short(s: &str, chars: usize) -> String {
    let n = s.chars().count();
    if n <= chars || chars < 5 {
        return s.to_string();
    }
    let head = (chars - 1) / 3;
    let tail = chars - 1 - head;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// Decibels with one decimal; `∞` for an exact tensor, `–` when undefined.
pub fn db(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.is_infinite() {
        if v > 0.0 { "∞" } else { "−∞" }.into()
    } else {
        format!("{v:.1}")
    }
}

/// A fraction as a percentage with a precision that keeps small shares visible.
pub fn percent(f: f64) -> String {
    let p = f * 100.0;
    if !p.is_finite() {
        "–".into()
    } else if p == 0.0 || p >= 10.0 {
        format!("{p:.1} %")
    } else if p >= 0.1 {
        format!("{p:.2} %")
    } else {
        format!("{p:.3} %")
    }
}

/// A real value with four significant digits, in scientific notation when tiny or huge.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return db(v);
    }
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    s.replace('-', "−")
}

pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

pub fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(html(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn script_json_cannot_close_the_script_and_parses_back() {
        let v = serde_json::json!({ "name": "</script><!-- & \u{2028}" });
        let s = script_json(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&') && !s.contains('\u{2028}'), "{s}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), v);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(0.0039215689), "0.003922");
        assert_eq!(num(-12.5), "−12.5");
        assert_eq!(num(1e-6), "1.000e−6");
        assert_eq!(num(250.0), "250");
        assert_eq!(db(f64::INFINITY), "∞");
        assert_eq!(db(31.04), "31.0");
        assert_eq!(percent(0.00012), "0.012 %");
        assert_eq!(percent(0.985), "98.5 %");
        assert_eq!(short("StatefulPartitionedCall/functional_1/activation_1/Relu:0", 22), "Statefu…ation_1/Relu:0");
        assert_eq!(short("ünïcödé", 20), "ünïcödé");
    }
}
