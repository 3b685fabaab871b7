//! QR codes as inline SVG: what an authenticator app scans at TOTP enrolment. Inline
//! (no image URL, no script), so a page under a strict CSP shows it as it is.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// `text` as an SVG QR code; `None` if it is too long for one.
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an app reads from the code: its modules drawn as a greyscale picture (4
    /// pixels a module, the quiet zone white), decoded by rqrr.
    fn scanned(text: &str) -> String {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        let width = code.width();
        let (scale, quiet) = (4, 4);
        let side = (width + 2 * quiet) * scale;
        let modules = code.to_colors();
        let mut picture = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
            let (mx, my) = ((x / scale).wrapping_sub(quiet), (y / scale).wrapping_sub(quiet));
            let dark = mx < width && my < width && modules[my * width + mx] == qrcode::Color::Dark;
            if dark { 0 } else { 255 }
        });
        let grids = picture.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn the_svg_is_inline_and_the_code_scans_as_the_uri() {
        let uri = "otpauth://totp/tokengate:mara%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
                   &issuer=tokengate&algorithm=SHA1&digits=6&period=30";
        let image = svg(uri).unwrap();
        assert!(image.starts_with("<?xml") && image.contains("<svg"), "{image}");
        for inert in ["<script", "href", "url(", "<image"] {
            assert!(!image.contains(inert), "{inert} in {image}");
        }
        assert_eq!(scanned(uri), uri);
        assert!(svg(&"x".repeat(5000)).is_none(), "too long for any QR code");
    }
}
