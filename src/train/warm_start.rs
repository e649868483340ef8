//! Fine-tuning from a saved version: the new network starts from the parent's weights and
//! keeps its tokenizer. A task may have gained classes since (added at the end of its label
//! list): that head grows, and the rows of the old classes keep their trained weights.

use crate::data::TaskLabels;
use tch::nn::VarStore;

/// Checks that `tasks` are the parent's tasks, in order, each keeping the parent's labels
/// in order as a prefix (new classes only at the end).
pub fn check_tasks(parent: &[TaskLabels], tasks: &[TaskLabels]) -> Result<(), String> {
    let names = |ts: &[TaskLabels]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if names(parent) != names(tasks) {
        return Err(format!(
            "a fine-tuning run must keep the parent's tasks {:?}, got {:?}",
            names(parent),
            names(tasks)
        ));
    }
    for (p, t) in parent.iter().zip(tasks) {
        if !t.labels.starts_with(&p.labels) {
            return Err(format!(
                "task '{}': the parent's classes {:?} must stay first and in order, got {:?}",
                p.name, p.labels, t.labels
            ));
        }
    }
    Ok(())
}

/// Copies every parent tensor into the same-named variable of `vs`. A variable under
/// `heads.` may have more rows (classes) than the parent's: its first rows get the parent's
/// and the new rows keep their fresh initialisation.
pub fn copy_weights(parent: &VarStore, vs: &VarStore) -> Result<(), String> {
    let source = parent.variables();
    for (name, var) in vs.variables() {
        let src = source
            .get(&name)
            .ok_or_else(|| format!("the parent version has no tensor '{name}'"))?;
        let (want, have) = (var.size(), src.size());
        tch::no_grad(|| {
            if want == have {
                var.shallow_clone().copy_(src);
                Ok(())
            } else if name.starts_with("heads.")
                && want.len() == have.len()
                && want[1..] == have[1..]
                && want[0] > have[0]
            {
                var.narrow(0, 0, have[0]).copy_(src);
                Ok(())
            } else {
                Err(format!(
                    "tensor '{name}' has shape {have:?} in the parent, the new network needs {want:?}"
                ))
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::model::network::MultiTaskNet;
    use tch::{nn, Device};

    #[test]
    fn a_grown_head_keeps_the_old_rows_and_everything_else_is_copied() {
        let config = ModelConfig::default();
        let old = [
            TaskLabels::new("reason", &["a", "b"]),
            TaskLabels::new("sentiment", &["neg", "pos"]),
        ];
        let new = [
            TaskLabels::new("reason", &["a", "b", "c"]),
            TaskLabels::new("sentiment", &["neg", "pos"]),
        ];
        check_tasks(&old, &new).unwrap();
        let parent = nn::VarStore::new(Device::Cpu);
        let _p = MultiTaskNet::new(&parent.root(), &config, 50, &old, "sentiment");
        let child = nn::VarStore::new(Device::Cpu);
        let _c = MultiTaskNet::new(&child.root(), &config, 50, &new, "sentiment");
        copy_weights(&parent, &child).unwrap();
        let (p, c) = (parent.variables(), child.variables());
        let pw = &p["heads.reason.weight"];
        let cw = &c["heads.reason.weight"];
        assert_eq!(cw.size()[0], 3);
        assert!(cw.narrow(0, 0, 2).equal(pw));
        assert!(!cw.narrow(0, 2, 1).equal(&pw.narrow(0, 0, 1)));
        assert!(c["encoder.embedding.weight"].equal(&p["encoder.embedding.weight"]));
        assert!(c["heads.sentiment.bias"].equal(&p["heads.sentiment.bias"]));
    }

    #[test]
    fn reordered_or_missing_classes_are_refused() {
        let old = [TaskLabels::new("reason", &["a", "b"])];
        assert!(check_tasks(&old, &[TaskLabels::new("reason", &["b", "a"])]).is_err());
        assert!(check_tasks(&old, &[TaskLabels::new("reason", &["a"])]).is_err());
        assert!(check_tasks(&old, &[TaskLabels::new("other", &["a", "b"])]).is_err());
    }
}
