//! SVG drawn on the server: the learning curve over model versions and a confusion matrix.

use super::html::esc;
use std::collections::BTreeMap;

/// One model version's score per task, in the order the versions were made.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    pub version: String,
    pub scores: BTreeMap<String, f64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; 6] = [
    "#0b5cad", "#bf3989", "#1a7f37", "#9a6700", "#6639ba", "#cf222e",
];

/// Macro-F1 (0–1) per task over versions: one line per task and one point (`circle`, with
/// `data-task` and `data-version`) per version that has a score for the task.
pub fn learning_curve(points: &[CurvePoint], tasks: &[String]) -> String {
    let n = points.len();
    let x = |i: usize| {
        if n <= 1 {
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (WIDTH - LEFT - RIGHT) * i as f64 / (n - 1) as f64
        }
    };
    let y = |score: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - score.clamp(0.0, 1.0));
    let mut svg = format!(
        "<svg class=\"curve\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"curve-title\">\
         <title id=\"curve-title\">Macro-F1 of each task over {n} model versions, oldest first</title>"
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d7de\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{tick:.2}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(tick) + 4.0,
            y = y(tick)
        ));
    }
    for i in 0..n {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            x(i),
            HEIGHT - BOTTOM + 16.0,
            i + 1
        ));
    }
    for (t, task) in tasks.iter().enumerate() {
        let colour = COLOURS[t % COLOURS.len()];
        let scored: Vec<(usize, &CurvePoint, f64)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.scores.get(task).map(|&s| (i, p, s)))
            .collect();
        let line: Vec<String> = scored
            .iter()
            .map(|&(i, _, s)| format!("{:.1},{:.1}", x(i), y(s)))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        ));
        for (i, p, s) in scored {
            svg.push_str(&format!(
                "<circle class=\"point\" data-task=\"{task}\" data-version=\"{v}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{colour}\">\
                 <title>{task} · {v}: {s:.4}</title></circle>",
                x(i),
                y(s),
                task = esc(task),
                v = esc(&p.version)
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{colour}\">{}</text>",
            LEFT + 8.0 + 140.0 * t as f64,
            HEIGHT - 6.0,
            esc(task)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A heat map of `confusion` (true label → predicted label → count) with the count in each
/// cell; rows are the true labels.
pub fn confusion_matrix(
    task: &str,
    labels: &[String],
    confusion: &BTreeMap<String, BTreeMap<String, u64>>,
) -> String {
    const CELL: f64 = 36.0;
    const MARGIN: f64 = 160.0;
    let k = labels.len() as f64;
    let side = MARGIN + CELL * k + 8.0;
    let most = confusion
        .values()
        .flat_map(|row| row.values())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut svg = format!(
        "<svg class=\"confusion\" width=\"{side}\" height=\"{side}\" viewBox=\"0 0 {side} {side}\" role=\"img\" aria-labelledby=\"cm-{id}\">\
         <title id=\"cm-{id}\">Confusion matrix of {task}: rows are the true labels, columns the predicted ones</title>",
        id = esc(task),
        task = esc(task)
    );
    for (i, label) in labels.iter().enumerate() {
        let at = MARGIN + CELL * i as f64;
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
             <text transform=\"translate({:.1},{:.1}) rotate(-60)\" font-size=\"11\">{}</text>",
            MARGIN - 6.0,
            at + CELL / 2.0 + 4.0,
            esc(&short(label)),
            at + CELL / 2.0,
            MARGIN - 6.0,
            esc(&short(label))
        ));
    }
    for (r, truth) in labels.iter().enumerate() {
        for (c, predicted) in labels.iter().enumerate() {
            let count = confusion
                .get(truth)
                .and_then(|row| row.get(predicted))
                .copied()
                .unwrap_or(0);
            let shade = (count as f64 / most * 0.85).min(0.85);
            let (cx, cy) = (MARGIN + CELL * c as f64, MARGIN + CELL * r as f64);
            let ink = if shade > 0.45 { "#fff" } else { "#1b1f24" };
            svg.push_str(&format!(
                "<rect class=\"cell\" x=\"{cx:.1}\" y=\"{cy:.1}\" width=\"{CELL}\" height=\"{CELL}\" fill=\"rgba(11,92,173,{shade:.3})\" stroke=\"#d0d7de\">\
                 <title>true {t}, predicted {p}: {count}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"{ink}\">{count}</text>",
                cx + CELL / 2.0,
                cy + CELL / 2.0 + 4.0,
                t = esc(truth),
                p = esc(predicted)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A label cut to 22 characters for an axis.
fn short(label: &str) -> String {
    if label.chars().count() <= 22 {
        label.to_string()
    } else {
        format!("{}…", label.chars().take(21).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(v: &str, scores: &[(&str, f64)]) -> CurvePoint {
        CurvePoint {
            version: v.into(),
            scores: scores.iter().map(|(t, s)| (t.to_string(), *s)).collect(),
        }
    }

    #[test]
    fn the_curve_has_one_point_per_version_and_task_scored() {
        let points = [
            point("v1", &[("sentiment", 0.5), ("category", 0.2)]),
            point("v2", &[("sentiment", 0.75)]),
            point("v3", &[("sentiment", 1.0), ("category", 0.4)]),
        ];
        let svg = learning_curve(&points, &["category".into(), "sentiment".into()]);
        assert_eq!(svg.matches("data-task=\"sentiment\"").count(), 3);
        assert_eq!(svg.matches("data-task=\"category\"").count(), 2);
        // 0.75 sits three quarters of the way up the plot area (y = 16 + 244 * 0.25 = 77).
        assert!(svg.contains("cx=\"376.0\" cy=\"77.0\""), "{svg}");
        assert!(svg.contains("<title>sentiment · v2: 0.7500</title>"));
    }

    #[test]
    fn the_confusion_matrix_shows_every_cell_count() {
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let mut confusion = BTreeMap::new();
        confusion.insert(
            "neg".to_string(),
            BTreeMap::from([("neg".to_string(), 7), ("pos".to_string(), 2)]),
        );
        let svg = confusion_matrix("sentiment", &labels, &confusion);
        assert_eq!(svg.matches("class=\"cell\"").count(), 4);
        assert!(svg.contains("<title>true neg, predicted pos: 2</title>"));
        assert!(svg.contains("<title>true pos, predicted neg: 0</title>"));
    }
}
