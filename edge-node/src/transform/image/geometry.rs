//! Where the output's pixels come from: a pure function of the source size, the operations and
//! the limits, so every fit mode is checked by a table without decoding an image.

use super::params::Fit;

/// A rectangle of the source, in source pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Crop the source to `crop` (when set), then resize that to `width` x `height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub crop: Option<Rect>,
    pub width: u32,
    pub height: u32,
}

/// What bounds the output, from [`ImagesConfig`](outpost_config::ImagesConfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
}

/// The plan for a `src_width` x `src_height` source (both at least 1). The output always fits
/// `bounds`: an output that would not (a tall image resized by width alone, a large source
/// with no resize) is scaled down to fit, keeping its aspect ratio.
pub fn plan(
    src_width: u32,
    src_height: u32,
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    bounds: Bounds,
) -> Plan {
    let (sw, sh) = (f64::from(src_width.max(1)), f64::from(src_height.max(1)));
    // `scale` maps source pixels to output pixels; `out` is the output size before bounds.
    let (scale, out) = match (width.map(f64::from), height.map(f64::from)) {
        (None, None) => (1.0, (sw, sh)),
        (Some(w), None) => {
            let scale = limit_enlarging(w / sw, fit);
            (scale, (sw * scale, sh * scale))
        }
        (None, Some(h)) => {
            let scale = limit_enlarging(h / sh, fit);
            (scale, (sw * scale, sh * scale))
        }
        (Some(w), Some(h)) => match fit {
            Fit::Contain | Fit::ScaleDown => {
                let scale = limit_enlarging((w / sw).min(h / sh), fit);
                (scale, (sw * scale, sh * scale))
            }
            // Fill the box, then keep its centre; `crop` never enlarges, so an image smaller
            // than the box on a side keeps that side.
            Fit::Cover | Fit::Crop => {
                let scale = limit_enlarging((w / sw).max(h / sh), fit);
                (scale, (w.min(sw * scale), h.min(sh * scale)))
            }
        },
    };
    let (out_w, out_h) = out;
    let shrink = 1f64
        .min(f64::from(bounds.max_width) / out_w)
        .min(f64::from(bounds.max_height) / out_h)
        .min((bounds.max_pixels as f64 / (out_w * out_h)).sqrt());
    let (width, height) = within(out_w * shrink, out_h * shrink, shrink < 1.0, bounds);
    // The source region that maps onto the output, centred.
    let crop_w = side(out_w / scale).min(src_width);
    let crop_h = side(out_h / scale).min(src_height);
    let crop = (crop_w < src_width || crop_h < src_height).then(|| Rect {
        x: (src_width - crop_w) / 2,
        y: (src_height - crop_h) / 2,
        width: crop_w,
        height: crop_h,
    });
    Plan { crop, width, height }
}

fn limit_enlarging(scale: f64, fit: Fit) -> f64 {
    if fit.enlarges() { scale } else { scale.min(1.0) }
}

/// A side in whole pixels: rounded, at least 1 (a 10000x1 image scaled down keeps one row).
fn side(pixels: f64) -> u32 {
    let rounded = pixels.round();
    if rounded >= f64::from(u32::MAX) { u32::MAX } else { (rounded as u32).max(1) }
}

/// The output sides in whole pixels. Sides scaled down to fit `bounds` are rounded down:
/// rounded to the nearest, both could round up and the area land above `max_pixels` (found by
/// `tests/fuzz`'s `image_params`: 2033x1525 for a 3100000-pixel bound). A side held at one
/// pixel can still leave the other above the area bound (a 10000x1 image, `max_pixels` 100):
/// the longer side is then cut to fit.
fn within(w: f64, h: f64, shrunk: bool, bounds: Bounds) -> (u32, u32) {
    if !shrunk {
        return (side(w), side(h));
    }
    let (mut w, mut h) = (side(w.floor()), side(h.floor()));
    let max = bounds.max_pixels.max(1);
    if u64::from(w) * u64::from(h) > max {
        if w >= h {
            w = u32::try_from(max / u64::from(h)).unwrap_or(u32::MAX).max(1);
        } else {
            h = u32::try_from(max / u64::from(w)).unwrap_or(u32::MAX).max(1);
        }
    }
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds { max_width: 8192, max_height: 8192, max_pixels: 50_000_000 };

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Option<Rect> {
        Some(Rect { x, y, width, height })
    }

    #[test]
    fn fit_modes() {
        use Fit::*;
        // (source, width, height, fit, crop, output)
        #[allow(clippy::type_complexity)]
        let cases: &[((u32, u32), Option<u32>, Option<u32>, Fit, Option<Rect>, (u32, u32))] = &[
            // No box: unchanged.
            ((2000, 1500), None, None, ScaleDown, None, (2000, 1500)),
            // One side: the other follows the aspect ratio.
            ((2000, 1500), Some(400), None, ScaleDown, None, (400, 300)),
            ((2000, 1500), None, Some(300), Contain, None, (400, 300)),
            // scale-down never enlarges; contain does.
            ((200, 150), Some(400), None, ScaleDown, None, (200, 150)),
            ((200, 150), Some(400), None, Contain, None, (400, 300)),
            // Both sides: inside the box.
            ((2000, 1500), Some(400), Some(400), ScaleDown, None, (400, 300)),
            ((2000, 1500), Some(400), Some(400), Contain, None, (400, 300)),
            ((200, 150), Some(400), Some(400), ScaleDown, None, (200, 150)),
            ((200, 150), Some(400), Some(400), Contain, None, (400, 300)),
            // cover fills the box exactly and keeps the centre: 2000x1500 scaled by 0.2667 is
            // 533x400; the middle 400 columns are source columns 250..1750.
            ((2000, 1500), Some(400), Some(400), Cover, rect(250, 0, 1500, 1500), (400, 400)),
            ((1500, 2000), Some(400), Some(400), Cover, rect(0, 250, 1500, 1500), (400, 400)),
            // cover enlarges a small source to fill the box.
            ((200, 150), Some(400), Some(400), Cover, rect(25, 0, 150, 150), (400, 400)),
            // crop = cover for a larger source ...
            ((2000, 1500), Some(400), Some(400), Crop, rect(250, 0, 1500, 1500), (400, 400)),
            // ... only cropped (to the box, from the centre) for a smaller one ...
            ((200, 150), Some(100), Some(400), Crop, rect(50, 0, 100, 150), (100, 150)),
            ((200, 150), Some(400), Some(400), Crop, None, (200, 150)),
            // ... and never enlarged when one side is smaller.
            ((1000, 200), Some(400), Some(400), Crop, rect(300, 0, 400, 200), (400, 200)),
            // Same aspect ratio: nothing to crop.
            ((2000, 1000), Some(400), Some(200), Cover, None, (400, 200)),
            // A side never rounds to 0.
            ((10000, 1), Some(100), None, ScaleDown, None, (100, 1)),
        ];
        for &((sw, sh), width, height, fit, crop, (ow, oh)) in cases {
            let got = plan(sw, sh, width, height, fit, BOUNDS);
            let want = Plan { crop, width: ow, height: oh };
            assert_eq!(got, want, "{sw}x{sh} {width:?}x{height:?} {fit:?}");
        }
    }

    /// The area bound (`images.max_source_pixels`) holds after sides are made whole pixels.
    #[test]
    fn the_area_bound_holds_after_rounding() {
        // (source, width, fit, max_pixels, output)
        let cases = [
            // Regression (tests/fuzz `image_params`): the 4000x3000 box scaled by
            // sqrt(3100000 / 12000000) is 2033.06 x 1524.8; rounded to the nearest that was
            // 2033x1525 = 3100325 pixels, above the bound. Rounded down it fits.
            ((2000, 1500), Some(4000), Fit::Contain, 3_100_000, (2033, 1524)),
            // The fuzz target's own input: a 29161x26794 source within the 50-megapixel
            // default scaled to 7376.9 x 6778.1, which rounded to 7377x6778 = 50001306.
            ((29_161, 26_794), None, Fit::ScaleDown, 50_000_000, (7376, 6778)),
            // A side held at one pixel: the other is cut to the area bound.
            ((10_000, 1), None, Fit::ScaleDown, 100, (100, 1)),
            // Not scaled down: rounded to the nearest as before.
            ((1000, 1000), Some(333), Fit::Contain, 50_000_000, (333, 333)),
        ];
        for ((sw, sh), width, fit, max_pixels, (ow, oh)) in cases {
            let bounds = Bounds { max_width: 8192, max_height: 8192, max_pixels };
            let got = plan(sw, sh, width, None, fit, bounds);
            assert_eq!((got.width, got.height), (ow, oh), "{sw}x{sh} to {width:?} within {max_pixels}");
            assert!(u64::from(got.width) * u64::from(got.height) <= max_pixels);
        }
    }

    #[test]
    fn outputs_stay_within_bounds() {
        let bounds = Bounds { max_width: 1000, max_height: 1000, max_pixels: 500_000 };
        let cases = [
            // A tall image resized by width alone: its height is held to max_height.
            ((100, 10_000), Some(800), None, Fit::Contain, (10, 1000)),
            // A large source with no resize: scaled into the box.
            ((4000, 2000), None, None, Fit::ScaleDown, (1000, 500)),
            // Within both sides but above max_pixels: scaled by the square root.
            ((1000, 1000), None, None, Fit::ScaleDown, (707, 707)),
        ];
        for ((sw, sh), width, height, fit, (ow, oh)) in cases {
            let got = plan(sw, sh, width, height, fit, bounds);
            assert_eq!((got.width, got.height), (ow, oh), "{sw}x{sh}");
            assert_eq!(got.crop, None);
        }
    }
}
