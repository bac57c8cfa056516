//! Geometry preparation in tile coordinates: clipping lines and rings to the tile plus a
//! buffer (so strokes and fills meet across tile edges), and Douglas–Peucker simplification.

/// A point in tile coordinates (not yet rounded).
pub type Pt = [f64; 2];

/// The part `t0..t1` of segment `a → b` inside the square `lo..hi` (Liang–Barsky).
fn clip_segment(a: Pt, b: Pt, lo: f64, hi: f64) -> Option<(f64, f64)> {
    let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
    for axis in 0..2 {
        let d = b[axis] - a[axis];
        for (p, q) in [(-d, a[axis] - lo), (d, hi - a[axis])] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    if r > t1 {
                        return None;
                    }
                    t0 = t0.max(r);
                } else {
                    if r < t0 {
                        return None;
                    }
                    t1 = t1.min(r);
                }
            }
        }
    }
    Some((t0, t1))
}

fn lerp(a: Pt, b: Pt, t: f64) -> Pt {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
}

/// The pieces of a line inside the square `lo..hi`; a line leaving and re-entering becomes
/// several pieces.
pub fn clip_line(line: &[Pt], lo: f64, hi: f64) -> Vec<Vec<Pt>> {
    let mut parts = Vec::new();
    let mut current: Vec<Pt> = Vec::new();
    for w in line.windows(2) {
        match clip_segment(w[0], w[1], lo, hi) {
            Some((t0, t1)) => {
                if current.is_empty() {
                    current.push(lerp(w[0], w[1], t0));
                }
                current.push(lerp(w[0], w[1], t1));
                if t1 < 1.0 {
                    parts.push(std::mem::take(&mut current));
                }
            }
            None if !current.is_empty() => parts.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts.retain(|p| p.len() >= 2);
    parts
}

/// An open ring clipped to the square `lo..hi` (Sutherland–Hodgman); empty when outside.
/// Orientation is kept.
pub fn clip_ring(ring: &[Pt], lo: f64, hi: f64) -> Vec<Pt> {
    let mut out = ring.to_vec();
    for (axis, bound, keep_above) in [(0, lo, true), (0, hi, false), (1, lo, true), (1, hi, false)]
    {
        let inside = |p: &Pt| {
            if keep_above {
                p[axis] >= bound
            } else {
                p[axis] <= bound
            }
        };
        let input = std::mem::take(&mut out);
        for (i, b) in input.iter().enumerate() {
            let a = input[(i + input.len() - 1) % input.len()];
            let cross = |a: Pt, b: Pt| lerp(a, b, (bound - a[axis]) / (b[axis] - a[axis]));
            match (inside(&a), inside(b)) {
                (true, true) => out.push(*b),
                (true, false) => out.push(cross(a, *b)),
                (false, true) => {
                    out.push(cross(a, *b));
                    out.push(*b);
                }
                (false, false) => {}
            }
        }
        if out.is_empty() {
            break;
        }
    }
    out
}

/// Douglas–Peucker: drops points closer than `tolerance` to the simplified line; the ends stay.
pub fn simplify(points: &[Pt], tolerance: f64) -> Vec<Pt> {
    if points.len() < 3 || tolerance <= 0.0 {
        return points.to_vec();
    }
    let mut keep = vec![false; points.len()];
    keep[0] = true;
    keep[points.len() - 1] = true;
    let mut stack = vec![(0, points.len() - 1)];
    while let Some((first, last)) = stack.pop() {
        let (a, b) = (points[first], points[last]);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = dx.hypot(dy);
        let mut worst = (0.0, first);
        for (i, p) in points.iter().enumerate().take(last).skip(first + 1) {
            let d = if len == 0.0 {
                (p[0] - a[0]).hypot(p[1] - a[1])
            } else {
                ((p[0] - a[0]) * dy - (p[1] - a[1]) * dx).abs() / len
            };
            if d > worst.0 {
                worst = (d, i);
            }
        }
        if worst.0 > tolerance {
            keep[worst.1] = true;
            stack.push((first, worst.1));
            stack.push((worst.1, last));
        }
    }
    points
        .iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(*p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_crossing_the_tile_is_cut_at_the_edges() {
        let parts = clip_line(&[[-10.0, 5.0], [20.0, 5.0]], 0.0, 10.0);
        assert_eq!(parts, vec![vec![[0.0, 5.0], [10.0, 5.0]]]);
    }

    #[test]
    fn line_leaving_and_returning_makes_two_parts() {
        let line = [[2.0, 2.0], [2.0, 20.0], [8.0, 20.0], [8.0, 2.0]];
        let parts = clip_line(&line, 0.0, 10.0);
        assert_eq!(
            parts,
            vec![vec![[2.0, 2.0], [2.0, 10.0]], vec![[8.0, 10.0], [8.0, 2.0]]]
        );
        assert!(clip_line(&[[20.0, 20.0], [30.0, 30.0]], 0.0, 10.0).is_empty());
        let inside = [[1.0, 1.0], [2.0, 2.0], [3.0, 1.0]];
        assert_eq!(clip_line(&inside, 0.0, 10.0), vec![inside.to_vec()]);
    }

    #[test]
    fn ring_larger_than_tile_becomes_the_tile() {
        let ring = [[-5.0, -5.0], [15.0, -5.0], [15.0, 15.0], [-5.0, 15.0]];
        let clipped = clip_ring(&ring, 0.0, 10.0);
        assert_eq!(
            clipped,
            vec![[0.0, 10.0], [0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]
        );
        assert!(clip_ring(&[[20.0, 20.0], [30.0, 20.0], [30.0, 30.0]], 0.0, 10.0).is_empty());
    }

    #[test]
    fn ring_half_inside_is_cut() {
        let ring = [[5.0, 2.0], [15.0, 2.0], [15.0, 8.0], [5.0, 8.0]];
        let clipped = clip_ring(&ring, 0.0, 10.0);
        assert_eq!(
            clipped,
            vec![[5.0, 2.0], [10.0, 2.0], [10.0, 8.0], [5.0, 8.0]]
        );
    }

    #[test]
    fn simplify_drops_near_collinear_points() {
        let line = [[0.0, 0.0], [5.0, 0.1], [10.0, 0.0], [10.0, 10.0]];
        assert_eq!(
            simplify(&line, 1.0),
            vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]
        );
        assert_eq!(simplify(&line, 0.0), line.to_vec());
    }
}
