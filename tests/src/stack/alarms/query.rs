//! The two CloudWatch calls the driver makes to the emulator, in CloudWatch's
//! Query protocol (form-encoded POST, XML answer).
//!
//! Why not aws-sdk-cloudwatch: the SDK speaks CloudWatch's newer CBOR
//! protocol, which moto 5.2 does not (it answers XML, which the SDK cannot
//! decode). moto needs no valid signature, only an Authorization header whose
//! credential scope names the service.

use std::time::Duration;

use anyhow::{bail, Context};

use super::eval::{Comparison, State};
use super::template::AlarmDef;

/// A CloudWatch Query client for the emulator at `endpoint`.
#[derive(Debug, Clone)]
pub struct CloudWatchQuery {
    endpoint: String,
    region: String,
    client: reqwest::Client,
}

impl CloudWatchQuery {
    /// A client for `endpoint` (e.g. moto's `http://127.0.0.1:PORT`).
    pub fn new(endpoint: &str, region: &str) -> anyhow::Result<Self> {
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    async fn call(&self, params: &[(String, String)]) -> anyhow::Result<String> {
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let date = chrono::Utc::now().format("%Y%m%d");
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/{date}/{}/monitoring/aws4_request, SignedHeaders=host, Signature=0",
            self.region
        );
        let resp = self
            .client
            .post(format!("{}/", self.endpoint))
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .context("CloudWatch query to the emulator")?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{status}: {text}");
        }
        Ok(text)
    }

    /// `PutMetricAlarm` with the template's settings, acting on `actions` (ARNs).
    pub async fn put_metric_alarm(&self, def: &AlarmDef, actions: &[String]) -> anyhow::Result<()> {
        let r = &def.rule;
        let comparison = match r.comparison {
            Comparison::Greater => "GreaterThanThreshold",
            Comparison::GreaterOrEqual => "GreaterThanOrEqualToThreshold",
            Comparison::Less => "LessThanThreshold",
            Comparison::LessOrEqual => "LessThanOrEqualToThreshold",
        };
        let mut p: Vec<(String, String)> = [
            ("Action", "PutMetricAlarm".to_string()),
            ("Version", "2010-08-01".into()),
            ("AlarmName", def.name.clone()),
            ("Namespace", def.namespace.clone()),
            ("MetricName", def.metric.clone()),
            ("Statistic", format!("{:?}", r.statistic)),
            ("ComparisonOperator", comparison.into()),
            ("Threshold", r.threshold.to_string()),
            ("Period", r.period_s.to_string()),
            ("EvaluationPeriods", r.evaluation_periods.to_string()),
            ("DatapointsToAlarm", r.datapoints_to_alarm.to_string()),
            ("TreatMissingData", r.missing.as_str().into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (i, (name, value)) in def.dimensions.iter().enumerate() {
            p.push((format!("Dimensions.member.{}.Name", i + 1), name.clone()));
            p.push((format!("Dimensions.member.{}.Value", i + 1), value.clone()));
        }
        for (i, arn) in actions.iter().enumerate() {
            p.push((format!("AlarmActions.member.{}", i + 1), arn.clone()));
        }
        self.call(&p)
            .await
            .with_context(|| format!("PutMetricAlarm {}", def.name))?;
        Ok(())
    }

    /// `SetAlarmState`: what CloudWatch records on a state change.
    pub async fn set_alarm_state(
        &self,
        name: &str,
        state: State,
        reason: &str,
        reason_data: &str,
    ) -> anyhow::Result<()> {
        let p: Vec<(String, String)> = [
            ("Action", "SetAlarmState"),
            ("Version", "2010-08-01"),
            ("AlarmName", name),
            ("StateValue", state.as_str()),
            ("StateReason", reason),
            ("StateReasonData", reason_data),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.call(&p)
            .await
            .with_context(|| format!("SetAlarmState {name}"))?;
        Ok(())
    }

    /// The alarm's state value in the emulator (`DescribeAlarms`).
    pub async fn state_of(&self, name: &str) -> anyhow::Result<Option<String>> {
        let p = vec![
            ("Action".to_string(), "DescribeAlarms".to_string()),
            ("Version".into(), "2010-08-01".into()),
            ("AlarmNames.member.1".into(), name.to_string()),
        ];
        let xml = self.call(&p).await?;
        Ok(xml
            .split("<StateValue>")
            .nth(1)
            .and_then(|rest| rest.split("</StateValue>").next())
            .map(str::to_string))
    }
}

/// Form (`application/x-www-form-urlencoded`) encoding of one key or value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(encode("a b/{\"x\"}:é"), "a%20b%2F%7B%22x%22%7D%3A%C3%A9");
        assert_eq!(
            encode("Dimensions.member.1.Name"),
            "Dimensions.member.1.Name"
        );
    }
}
