//! The pages' HTML: escaping, and the frame every page shares (navigation, sign-out, the
//! one script and style sheet, all served from the binary).

use super::session::Session;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Text made safe for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// A value made safe inside a URL query (percent-encoding all but unreserved characters).
pub fn url(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Which page the navigation marks as current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Label,
    Models,
    Queue,
    SignIn,
}

/// Scripts, styles and forms from this server only; no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole page: `body` inside the shared frame, answered with `status`.
pub fn page(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    nav: Nav,
    body: &str,
) -> Response {
    let link = |to: Nav, href: &str, name: &str| {
        let current = if to == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{name}</a>")
    };
    let account = match session {
        Some(s) => format!(
            "<form method=\"post\" action=\"/ui/sign-out\" class=\"signout\">\
             <span>Signed in as <strong>{}</strong>{}</span>\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Sign out</button></form>",
            esc(&s.annotator),
            if s.admin { " (admin)" } else { "" },
            s.csrf_token()
        ),
        None => String::new(),
    };
    let links = if session.is_some() {
        [
            link(Nav::Label, "/ui", "Label"),
            link(Nav::Models, "/ui/models", "Models"),
            link(Nav::Queue, "/ui/queue", "Queue"),
        ]
        .join(" ")
    } else {
        String::new()
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · voc</title><link rel=\"stylesheet\" href=\"/ui/assets/ui.css\">\
         <script src=\"/ui/assets/ui.js\" defer></script></head>\n<body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><span class=\"brand\">voc</span><nav aria-label=\"Pages\">{links}</nav>{account}</header>\n\
         <main id=\"main\">\n<h1>{title}</h1>\n{body}\n</main></body></html>\n",
        title = esc(title)
    );
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(html),
    )
        .into_response()
}

/// A hidden form field.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        esc(name),
        esc(value)
    )
}

pub const UI_JS: &str = include_str!("assets/ui.js");
pub const UI_CSS: &str = include_str!("assets/ui.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(url("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
