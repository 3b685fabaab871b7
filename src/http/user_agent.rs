//! A short, readable name for the device behind a User-Agent ("Chrome 156 on Linux",
//! "curl 8.5"), for session lists: the raw string is 150 characters nobody reads.
//! Browsers and platforms come from `woothee`'s maintained dataset; a client it does
//! not know (curl, an SDK) is named by its first product token.

/// The readable name, if the User-Agent says anything recognisable.
pub fn device_label(user_agent: &str) -> Option<String> {
    let ua = user_agent.trim();
    if ua.is_empty() {
        return None;
    }
    if let Some(r) = woothee::parser::Parser::new().parse(ua) {
        let known = |v: &str| !v.is_empty() && v != woothee::woothee::VALUE_UNKNOWN;
        // Browsers and devices; its "misc" names (an "HTTP Library") say less than the
        // product token does.
        let device = matches!(r.category, "pc" | "smartphone" | "mobilephone" | "appliance");
        if device && known(r.name) {
            let name = match major(r.version) {
                Some(v) => format!("{} {v}", r.name),
                None => r.name.to_owned(),
            };
            return Some(if known(r.os) {
                format!("{name} on {}", r.os)
            } else {
                name
            });
        }
    }
    product_token(ua)
}

/// A version's leading number ("156.0.8078.73" -> "156").
fn major(version: &str) -> Option<&str> {
    let v = version.split('.').next()?;
    (!v.is_empty() && v.chars().all(|c| c.is_ascii_digit())).then_some(v)
}

/// `name/1.2.3 (...)` -> "name 1.2": the first product of RFC 9110's User-Agent grammar.
fn product_token(ua: &str) -> Option<String> {
    let product = ua.split_whitespace().next()?;
    let (name, version) = product.split_once('/').unwrap_or((product, ""));
    let printable = |s: &str| s.chars().all(|c| c.is_ascii_graphic());
    if name.is_empty() || name.len() > 40 || !printable(name) || !printable(version) {
        return None;
    }
    let short: Vec<&str> = version.split('.').take(2).filter(|p| !p.is_empty()).collect();
    Some(if short.is_empty() {
        name.to_owned()
    } else {
        format!("{name} {}", short.join("."))
    })
}

#[cfg(test)]
mod tests {
    use super::device_label;

    #[test]
    fn browsers_and_tools_get_short_names() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.73 Safari/537.36",
                "Chrome 156 on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox 128 on Windows 10",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari 17 on iPhone",
            ),
            ("curl/8.5.0", "curl 8.5"),
            ("python-requests/2.34.2", "python-requests 2.34"),
            ("tokengate-tests", "tokengate-tests"),
        ];
        for (ua, want) in cases {
            assert_eq!(device_label(ua).as_deref(), Some(want), "{ua}");
        }
        assert_eq!(device_label(""), None);
        assert_eq!(device_label("   "), None);
    }
}
