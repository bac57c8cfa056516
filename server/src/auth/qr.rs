//! QR codes drawn on the server as SVG, for what a phone or tablet scans off the console (a
//! second-factor enrolment, a tablet's enrolment link): nothing is sent to an outside service.

use qrcode::render::svg;
use qrcode::QrCode;

/// `text` as a QR code in SVG, at least 200 px square; `None` when it is too long for one.
pub fn qr_svg(text: &str) -> Option<String> {
    Some(
        QrCode::new(text.as_bytes())
            .ok()?
            .render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_becomes_an_svg_and_an_oversized_text_does_not() {
        let svg = qr_svg("dispatch-enrol://10.0.0.1:8443?code=ABCD-EFGH-JKLM&pin=00").unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
        assert!(qr_svg(&"x".repeat(8000)).is_none());
    }
}
