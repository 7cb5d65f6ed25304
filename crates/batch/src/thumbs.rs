//! PNG thumbnails of a candidate: axial, coronal and sagittal crops side by side, in a lung window,
//! with a circle around the estimated diameter (radius + 1 mm, so it frames the edge instead of
//! covering it), so a radiologist can look instead of reading numbers.
//!
//! Crops are sampled in world space (trilinear interpolation at a fixed pixel size), so they are
//! square and in the radiological convention whatever the scan's spacing or orientation: axial
//! with the patient's right on the image's left and anterior at the top; coronal with superior at
//! the top; sagittal with anterior on the left.

use std::io;
use std::path::Path;

use speck_volume::sample::{trilinear, Border};
use speck_volume::{ContinuousIndex, Volume, WorldPoint};

use super::atomic;

/// Width and height of one panel, pixels.
pub const PANEL_PX: usize = 160;
/// Gap between panels, pixels.
const GAP_PX: usize = 4;
/// Lung window: level and width in HU.
const WINDOW_LEVEL_HU: f64 = -600.0;
const WINDOW_WIDTH_HU: f64 = 1500.0;
/// Smallest field of view of a panel, mm.
const MIN_FOV_MM: f64 = 32.0;
/// The circle is drawn this far outside the estimated radius, so it frames the nodule's edge
/// instead of covering it.
const RING_MARGIN_MM: f64 = 1.0;
/// Diameter drawn when the detector gives none, mm (the circle is then dashed).
const DEFAULT_DIAMETER_MM: f64 = 6.0;

/// Trilinear interpolation of HU at a continuous index; within half a voxel of the volume the
/// edge repeats, farther out it is air.
fn sample(volume: &Volume, idx: ContinuousIndex) -> f64 {
    trilinear(
        volume.voxels(),
        [idx.z, idx.y, idx.x],
        Border::Clamp(-1024.0),
    )
}

fn window(hu: f64) -> u8 {
    let lo = WINDOW_LEVEL_HU - WINDOW_WIDTH_HU / 2.0;
    let t = ((hu - lo) / WINDOW_WIDTH_HU).clamp(0.0, 1.0);
    (t * 255.0).round() as u8
}

/// Render the three-panel RGB image of a candidate at `centre` (LPS mm) with `diameter_mm`.
/// Returns `(width, height, rgb bytes)`.
pub fn render(
    volume: &Volume,
    centre: WorldPoint,
    diameter_mm: Option<f64>,
) -> (usize, usize, Vec<u8>) {
    let d = diameter_mm.filter(|d| d.is_finite() && *d > 0.0);
    let diam = d.unwrap_or(DEFAULT_DIAMETER_MM);
    let fov = (diam * 6.0).max(MIN_FOV_MM);
    let px_mm = fov / PANEL_PX as f64;
    let radius_px = (diam / 2.0 + RING_MARGIN_MM) / px_mm;
    // (u, v) axes in LPS for each panel: u to the right, v downwards.
    let panels: [([f64; 3], [f64; 3]); 3] = [
        ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),  // axial
        ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0]), // coronal
        ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0]), // sagittal
    ];
    let width = 3 * PANEL_PX + 2 * GAP_PX;
    let height = PANEL_PX;
    let mut rgb = vec![0u8; width * height * 3];
    let g = volume.geometry();
    let half = PANEL_PX as f64 / 2.0;
    for (k, (u, v)) in panels.iter().enumerate() {
        let x0 = k * (PANEL_PX + GAP_PX);
        for r in 0..PANEL_PX {
            for c in 0..PANEL_PX {
                let du = (c as f64 + 0.5 - half) * px_mm;
                let dv = (r as f64 + 0.5 - half) * px_mm;
                let p = WorldPoint::new(
                    centre.x_mm + du * u[0] + dv * v[0],
                    centre.y_mm + du * u[1] + dv * v[1],
                    centre.z_mm + du * u[2] + dv * v[2],
                );
                let gray = window(sample(volume, g.world_to_index(p)));
                let mut px = [gray, gray, gray];
                let dist =
                    ((c as f64 + 0.5 - half).powi(2) + (r as f64 + 0.5 - half).powi(2)).sqrt();
                let on_ring = (dist - radius_px).abs() < 1.0;
                // Dashed when the diameter is a default, solid when estimated.
                let dashed_off = d.is_none() && {
                    let angle = (r as f64 + 0.5 - half).atan2(c as f64 + 0.5 - half);
                    ((angle + std::f64::consts::PI) * 8.0 / std::f64::consts::PI) as i64 % 2 == 1
                };
                if on_ring && !dashed_off {
                    px = [255, 64, 48];
                }
                let o = (r * width + x0 + c) * 3;
                rgb[o..o + 3].copy_from_slice(&px);
            }
        }
    }
    (width, height, rgb)
}

/// Encode an RGB image as PNG bytes.
///
/// # Errors
/// An I/O error from the encoder.
pub fn encode_png(width: usize, height: usize, rgb: &[u8]) -> io::Result<Vec<u8>> {
    let w = u32::try_from(width).map_err(io::Error::other)?;
    let h = u32::try_from(height).map_err(io::Error::other)?;
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(io::Error::other)?;
        writer.write_image_data(rgb).map_err(io::Error::other)?;
        writer.finish().map_err(io::Error::other)?;
    }
    Ok(out)
}

/// Render and write a thumbnail atomically.
///
/// # Errors
/// Any I/O error.
pub fn write_thumbnail(
    path: &Path,
    volume: &Volume,
    centre: WorldPoint,
    diameter_mm: Option<f64>,
) -> io::Result<()> {
    let (w, h, rgb) = render(volume, centre, diameter_mm);
    let bytes = encode_png(w, h, &rgb)?;
    atomic::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use speck_volume::{Direction, Geometry, Provenance, Spacing};

    fn ball_volume() -> (Volume, WorldPoint) {
        let mut a = Array3::<i16>::from_elem((20, 40, 40), -900);
        for ((z, y, x), v) in a.indexed_iter_mut() {
            let d2 = (z as f64 - 10.0).powi(2) * 4.0
                + (y as f64 - 20.0).powi(2)
                + (x as f64 - 20.0).powi(2);
            if d2 <= 16.0 {
                *v = 40;
            }
        }
        let g = Geometry::new(
            Spacing::new(1.0, 1.0, 2.0).expect("spacing"),
            WorldPoint::new(-20.0, -20.0, -20.0),
            Direction::IDENTITY,
        );
        let vol = Volume::new(a, g, Provenance::default()).expect("volume");
        let centre = vol.voxel_to_world(speck_volume::VoxelIndex::new(10, 20, 20));
        (vol, centre)
    }

    #[test]
    fn nodule_is_bright_at_the_centre_of_every_panel_and_ring_is_red() {
        let (vol, c) = ball_volume();
        let (w, h, rgb) = render(&vol, c, Some(8.0));
        assert_eq!((w, h), (3 * PANEL_PX + 2 * GAP_PX, PANEL_PX));
        for k in 0..3 {
            let x = k * (PANEL_PX + GAP_PX) + PANEL_PX / 2;
            let o = (PANEL_PX / 2 * w + x) * 3;
            assert!(
                rgb[o] > 200 && rgb[o] == rgb[o + 1],
                "panel {k} centre not bright"
            );
            let corner = (2 * w + k * (PANEL_PX + GAP_PX) + 2) * 3;
            assert!(rgb[corner] < 80, "panel {k} corner not dark");
        }
        assert!(rgb.chunks(3).any(|p| p == [255, 64, 48]));
        let png = encode_png(w, h, &rgb).expect("png");
        assert_eq!(&png[1..4], b"PNG");
    }
}
