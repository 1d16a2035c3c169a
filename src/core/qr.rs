//! QR codes as inline SVG.
//!
//! qrcodegen computes the modules but has no SVG writer, so this draws them:
//! one path of 1×1 squares on an explicit white background with a 4-module
//! quiet zone, dark on white whatever the page's theme.

use qrcodegen::{QrCode, QrCodeEcc};

pub const QUIET_ZONE: i32 = 4;

/// SVG markup for `text`. The `id` and `aria-label` make it addressable and
/// describable. `None` only if the text is too long for any QR version.
pub fn svg(text: &str, id: &str, label: &str) -> Option<String> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = qr.size();
    let dim = size + 2 * QUIET_ZONE;
    let mut path = String::with_capacity((size * size * 8) as usize);
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE));
            }
        }
    }
    Some(format!(
        concat!(
            r##"<svg id="{id}" class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {dim} {dim}" "##,
            r##"width="{px}" height="{px}" shape-rendering="crispEdges" role="img" aria-label="{label}">"##,
            r##"<rect x="0" y="0" width="{dim}" height="{dim}" fill="#ffffff"/>"##,
            r##"<path d="{path}" fill="#000000"/></svg>"##
        ),
        id = id,
        dim = dim,
        px = dim * 6,
        label = label,
        path = path
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_quiet_zone_and_white_background() {
        let s = svg("otpauth://totp/A:b?secret=AAAA", "mfa-qr", "QR").unwrap();
        assert!(s.starts_with("<svg id=\"mfa-qr\""));
        assert!(s.contains("fill=\"#ffffff\""));
        // No module is drawn inside the quiet zone.
        assert!(!s.contains("M0,") && !s.contains("M3,"));
        assert!(s.contains("M4,4h1v1h-1z"), "finder pattern corner");
    }
}
