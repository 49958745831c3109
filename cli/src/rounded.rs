//! Floats serialised with a fixed number of decimals, as the hand-written JSON of earlier
//! versions (and kcppeer's `%.6f`) printed them: `#[serde(serialize_with = "rounded::<3, _>")]`.
use serde::Serializer;

/// Serialises `v` rounded to `PLACES` decimals (the value, not a string: `0.1235` for 3).
pub fn rounded<const PLACES: i32, S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round(*v, PLACES))
}

/// `v` rounded to `places` decimals.
pub fn round(v: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Two {
        #[serde(serialize_with = "rounded::<2, _>")]
        x: f64,
        #[serde(serialize_with = "rounded::<6, _>")]
        y: f64,
    }

    #[test]
    fn rounds_to_the_places_asked_for() {
        let j = serde_json::to_string(&Two {
            x: 1.23456,
            y: 0.123_456_789,
        })
        .unwrap();
        assert_eq!(j, r#"{"x":1.23,"y":0.123457}"#);
        assert_eq!(round(2.5, 0), 3.0);
    }
}
