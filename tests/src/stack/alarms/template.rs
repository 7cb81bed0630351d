//! The alarm definitions of `infra/scaling.yaml`, as the alarm driver reads
//! them: decoded by cfn-lint (the reference decoder, [`crate::template`]) and
//! read by `alarm_model::template`, the same reader the scaling simulator uses.

pub use crate::template::decode;
pub use alarm_model::template::{alarms, AlarmDef};

/// The scaling template's path in the repository.
pub fn scaling_template() -> std::path::PathBuf {
    test_support::paths::repo_root().join("infra/scaling.yaml")
}

/// Every alarm of the scaling template (`infra/scaling.yaml`).
pub fn load() -> anyhow::Result<Vec<AlarmDef>> {
    alarms(&decode(&scaling_template())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator decodes the template with its own YAML reader
    /// (`alarm_model::cfn`); it must read the same alarms as cfn-lint's decoder.
    #[test]
    fn the_rust_decoder_reads_the_same_alarms_as_cfn_lint() {
        let by_cfn_lint = load().expect("alarms through cfn-lint (run `make setup`)");
        let ours = alarm_model::template::load_file(&scaling_template()).expect("alarms");
        assert!(by_cfn_lint.len() >= 5, "{by_cfn_lint:#?}");
        assert_eq!(ours, by_cfn_lint);
        let t = decode(&scaling_template()).unwrap();
        let mine = alarm_model::cfn::decode_file(&scaling_template()).unwrap();
        assert_eq!(
            mine["Parameters"], t["Parameters"],
            "parameters decode alike"
        );
        assert_eq!(
            mine["Globals"], t["Globals"],
            "function environment decodes alike"
        );
    }
}
