//! Splitting `app` and publish names the way nginx-rtmp does: `name?k=v&k2=v2`
//! (nginx-rtmp `ngx_rtmp_cmd_module.c`; the query is outside RTMP §7.2.2.6).
//! Parameter values are stream keys: never log them.

/// Most query parameters kept from one publish name (the rest are ignored).
pub const MAX_PARAMS: usize = 64;

/// `live?x=1` -> `live` (surrounding slashes trimmed).
pub fn strip_app(app: &str) -> String {
    let app = app.split('?').next().unwrap_or("");
    app.trim_matches('/').to_owned()
}

/// `mystream?key=abc&x=%20y` -> (`mystream`, [(key, abc), (x, " y")]).
pub fn split_stream_name(name: &str) -> (String, Vec<(String, String)>) {
    let (stream, query) = match name.split_once('?') {
        Some((s, q)) => (s, q),
        None => (name, ""),
    };
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(MAX_PARAMS)
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (stream.to_owned(), params)
}

/// RFC 3986 §2.1 percent-decoding (the `percent-encoding` crate); `+` stays `+` (stream keys
/// may contain it), invalid escapes are kept as they are, invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps() {
        for (input, want) in [
            ("live", "live"),
            ("live?key=1", "live"),
            ("/live/", "live"),
            ("a/b?x", "a/b"),
            ("", ""),
        ] {
            assert_eq!(strip_app(input), want);
        }
    }

    #[test]
    fn stream_names() {
        let kv = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let cases = [
            ("test", "test", kv(&[])),
            ("test?key=secret", "test", kv(&[("key", "secret")])),
            (
                "s?key=a%2Fb&x=1&&flag",
                "s",
                kv(&[("key", "a/b"), ("x", "1"), ("flag", "")]),
            ),
            ("s?k=a+b%zz%4", "s", kv(&[("k", "a+b%zz%4")])),
            ("s?k=%C3%A9", "s", kv(&[("k", "é")])),
            ("?k=v", "", kv(&[("k", "v")])),
        ];
        for (input, name, params) in cases {
            assert_eq!(
                split_stream_name(input),
                (name.to_string(), params),
                "{input}"
            );
        }
        let many = format!("s?{}", "a=b&".repeat(1000));
        assert_eq!(split_stream_name(&many).1.len(), MAX_PARAMS);
    }
}
