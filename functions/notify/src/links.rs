//! AWS console links, built from the region in the event (console URLs carry the
//! region, not the account; the body names the account beside them).

/// Percent-encodes a path or fragment component (alarm names may contain spaces).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn console(region: &str) -> String {
    format!("https://{region}.console.aws.amazon.com")
}

/// The ECS service page (tasks, events, deployments).
pub fn service(region: &str, cluster: &str, service: &str) -> String {
    format!(
        "{}/ecs/v2/clusters/{}/services/{}/health?region={region}",
        console(region),
        enc(cluster),
        enc(service)
    )
}

/// One task's page; its Logs tab shows the container's output.
pub fn task(region: &str, cluster: &str, task_id: &str) -> String {
    format!(
        "{}/ecs/v2/clusters/{}/tasks/{}/configuration?region={region}",
        console(region),
        enc(cluster),
        enc(task_id)
    )
}

/// A CloudWatch alarm, with its history.
pub fn alarm(region: &str, name: &str) -> String {
    format!(
        "{}/cloudwatch/home?region={region}#alarmsV2:alarm/{}",
        console(region),
        enc(name)
    )
}

/// A Lambda function's CloudWatch Logs group.
pub fn function_logs(region: &str, function: &str) -> String {
    // The console encodes '/' in the group name as $252F inside the fragment.
    let group = format!("/aws/lambda/{function}").replace('/', "$252F");
    format!(
        "{}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{group}",
        console(region)
    )
}

/// An Auto Scaling group's activity history.
pub fn asg(region: &str, name: &str) -> String {
    format!(
        "{}/ec2/home?region={region}#AutoScalingGroupDetails:id={};view=activity",
        console(region),
        enc(name)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn alarm_names_are_encoded() {
        let l = super::alarm("eu-west-1", "a b/c");
        assert!(l.ends_with("#alarmsV2:alarm/a%20b%2Fc"), "{l}");
        assert!(l.starts_with("https://eu-west-1.console.aws.amazon.com/"));
    }
}
